"""Recipe variants in config: deep merge, the reference, and one-line errors for keys a variant must not change."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from leukoreport.base.errors import LeukoError
from leukoreport.config.variants import (
    RECIPE_KEYS,
    SHARED_KEYS,
    deep_merge,
    reference_variant,
    variant_configs,
    variant_root,
)

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"


def smoke() -> dict:
    return yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())


def with_variants(variants: dict, reference=None) -> dict:
    cfg = smoke()
    cfg["variants"] = variants
    if reference is not None:
        cfg["reference"] = reference
    return cfg


def test_deep_merge_replaces_leaves_and_keeps_siblings():
    base = {"a": 1, "aug": {"p": 0.75, "flip": True}, "phases": {"frozen": {"lr": 1e-3, "max_epochs": 2}}}
    merged = deep_merge(base, {"aug": {"p": 0.0}, "phases": {"frozen": {"lr": 5e-4}}, "b": [1, 2]})
    assert merged == {"a": 1, "aug": {"p": 0.0, "flip": True},
                      "phases": {"frozen": {"lr": 5e-4, "max_epochs": 2}}, "b": [1, 2]}
    assert base["aug"]["p"] == 0.75 and base["phases"]["frozen"]["lr"] == 1e-3  # the input is untouched


def test_variant_configs_merge_onto_the_base_config():
    cfg = with_variants({"paper": {}, "no_augmentation": {"augmentation": {"p_affine": 0.0, "p_lighting": 0.0,
                                                                           "do_flip": False}},
                         "random_init": {"pretrained": True}})
    before = copy.deepcopy(cfg)
    out = variant_configs(cfg, SCHEMA, ROOT)
    assert list(out) == ["paper", "no_augmentation", "random_init"]
    base = {k: v for k, v in cfg.items() if k not in ("variants", "reference")}
    assert out["paper"] == base
    assert out["no_augmentation"]["augmentation"] == {**base["augmentation"], "p_affine": 0.0, "p_lighting": 0.0,
                                                      "do_flip": False}
    assert out["no_augmentation"]["phases"] == base["phases"]
    assert out["random_init"]["pretrained"] is True and base["pretrained"] is False
    assert cfg == before


def test_no_variants_means_a_single_recipe():
    assert variant_configs(smoke(), SCHEMA, ROOT) == {}
    assert reference_variant(smoke()) is None
    assert variant_root(None) == variant_root(None, "results")
    assert variant_root("paper").as_posix() == "results/variants/paper"


def test_reference_defaults_to_the_first_variant():
    assert reference_variant(with_variants({"b": {}, "a": {}})) == "b"
    assert reference_variant(with_variants({"b": {}, "a": {}}, reference="a")) == "a"


@pytest.mark.parametrize("key", SHARED_KEYS)
def test_a_shared_key_inside_a_variant_is_refused_in_one_line(key):
    cfg = with_variants({"paper": {}, "odd": {key: smoke().get(key, [1])}})
    with pytest.raises(LeukoError) as err:
        variant_configs(cfg, SCHEMA, ROOT)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"config key variants.odd.{key}: must be the same for every variant")


@pytest.mark.parametrize("overrides, key", [
    ({"leakage": "fail"}, "variants.odd.leakage: not a recipe key"),
    ({"size": "big"}, "variants.odd.size"),
    ({"augmentation": {"max_rotate": 270}}, "variants.odd.augmentation.max_rotate"),
    ({"phases": {"frozen": {"lr": 0}}}, "variants.odd.phases.frozen.lr"),
])
def test_bad_override_names_the_variant_key(overrides, key):
    with pytest.raises(LeukoError) as err:
        variant_configs(with_variants({"paper": {}, "odd": overrides}), SCHEMA, ROOT)
    assert "\n" not in str(err.value)
    assert str(err.value).startswith(f"config key {key}")


def test_unknown_reference_is_refused():
    with pytest.raises(LeukoError, match=r"^config key reference: 'nope' is not a variant \(a, b\)$"):
        variant_configs(with_variants({"a": {}, "b": {}}, reference="nope"), SCHEMA, ROOT)
    cfg = smoke()
    cfg["reference"] = "a"
    with pytest.raises(LeukoError, match="^config key reference: 'a' given but there are no variants$"):
        variant_configs(cfg, SCHEMA, ROOT)


def test_recipe_and_shared_keys_are_schema_keys():
    schema = yaml.safe_load(SCHEMA.read_text())
    assert set(RECIPE_KEYS) <= set(schema["properties"])
    assert set(SHARED_KEYS) - {"class_aliases"} <= set(schema["properties"])
    assert not set(RECIPE_KEYS) & set(SHARED_KEYS)


@pytest.mark.parametrize("name", ["variants.yaml", "smoke_variants.yaml"])
def test_shipped_variant_configs_are_valid(name):
    cfg = yaml.safe_load((ROOT / "config" / name).read_text())
    out = variant_configs(cfg, SCHEMA, ROOT)
    assert len(out) >= 2 and reference_variant(cfg) in out
