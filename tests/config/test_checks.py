"""Config validation: shipped configs pass; a bad value fails with one line naming the key."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from leukoreport.base.errors import LeukoError
from leukoreport.config.checks import check_config

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"


def load(name: str) -> dict:
    return yaml.safe_load((ROOT / "config" / name).read_text())


@pytest.mark.parametrize("name", ["config.yaml", "smoke.yaml"])
def test_shipped_configs_are_valid(name):
    check_config(load(name), SCHEMA, ROOT)


def test_default_config_is_the_papers_recipe():
    cfg = load("config.yaml")
    assert cfg["pretrained"] is True and cfg["size"] == 224 and cfg["split_seeds"] == [42]
    assert cfg["split_fractions"] == [0.7, 0.15, 0.15] and cfg["seeds"] == [42, 43, 44]
    assert cfg["phases"] == {"frozen": {"lr": 1e-3, "max_epochs": 20, "patience": 3},
                             "unfrozen": {"lr": 1e-4, "max_epochs": 20, "patience": 5}}
    aug = cfg["augmentation"]
    assert (aug["max_rotate"], aug["min_scale"], aug["max_warp"], aug["max_lighting"]) == (180, 0.75, 0.2, 0.5)
    assert aug["do_flip"] and aug["flip_vert"] and aug["p_affine"] == aug["p_lighting"] == 0.75


@pytest.mark.parametrize(
    "edit, key",
    [
        (lambda c: c.update(seeds=[-1]), "seeds[0]"),
        (lambda c: c.update(size="big"), "size"),
        (lambda c: c["phases"]["frozen"].update(lr=0), "phases.frozen.lr"),
        (lambda c: c["augmentation"].update(max_rotate=270), "augmentation.max_rotate"),
        (lambda c: c.update(batchsize=32), "(top level)"),
        (lambda c: c.pop("data_dir"), "data_dir"),
        (lambda c: c.update(external={"test": "data/external_monocyte"}), "external"),
        (lambda c: c.update(split_fractions=[0.5, 0.3, 0.3]), "split_fractions"),
        (lambda c: c.update(data_dir="data/nowhere"), "data_dir"),
        (lambda c: c.update(external={"ext": "data/nowhere"}), "external.ext"),
        (lambda c: c.update(split_seed=42), "split_seed: replaced by split_seeds"),
        (lambda c: c.update(split_seeds=[]), "split_seeds"),
        (lambda c: c.update(leakage="stop"), "leakage"),
        (lambda c: c.update(confidence_level=1.5), "confidence_level"),
    ],
)
def test_bad_value_names_the_key(edit, key):
    cfg = copy.deepcopy(load("smoke.yaml"))
    edit(cfg)
    with pytest.raises(LeukoError) as err:
        check_config(cfg, SCHEMA, ROOT)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"config key {key}")
