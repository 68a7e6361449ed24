"""Recipe deviations: the paper's declared recipe and software against the runs, item by item."""

from __future__ import annotations

from pathlib import Path

import yaml

from leukoreport.config.claims import load_claims
from leukoreport.stats.deviations import (
    RECIPE_ITEMS,
    STATUSES,
    deviation_text,
    format_value,
    recipe_deviations,
    same_value,
)

ROOT = Path(__file__).resolve().parents[2]


def train(pretrained=True, lr=1e-3, device="mps") -> dict:
    return {"pretrained": pretrained, "size": 64, "batch_size": 16, "schedule": "one_cycle", "device": device,
            "stain_augmentation": {"method": "none", "strength": 0.05},
            "phases": [{"frozen": True, "lr": lr, "max_epochs": 2, "patience": 3},
                       {"frozen": False, "lr": 1e-4, "max_epochs": 2, "patience": 5}]}


def by_item(rows):
    return {d.item: d for d in rows}


def test_smoke_config_against_the_papers_recipe():
    claims = load_claims(ROOT / "config" / "claims.yaml")
    config = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    rows = recipe_deviations(claims.recipe, claims.software, [train(False, device="cpu (x86_64)")] * 2, config,
                             {"fastai": "2.8.5", "torch": "2.4.0"}, "cpu (x86_64)")
    assert all(d.status in STATUSES for d in rows)
    out = by_item(rows)
    assert list(out)[:len(RECIPE_ITEMS)] == list(RECIPE_ITEMS)
    assert (out["pretrained"].status, out["pretrained"].rerun) == ("different", "false")
    assert deviation_text(out["pretrained"]) == "pretrained: declared true, rerun false (random initialisation)"
    assert out["size"].status == "not declared" and out["size"].rerun == "64"  # the paper states no image size
    assert out["max_per_class"].status == "different" and out["max_per_class"].how == "at most 20 images per class"
    assert out["phases.frozen.max_epochs"].status == "different" and out["phases.frozen.max_epochs"].how == "smaller"
    assert out["phases.frozen.lr"].status == "same" and out["phases.frozen.patience"].status == "same"
    assert out["augmentation.max_rotate"].status == "same" and out["augmentation.max_zoom"].status == "not declared"
    assert out["split_seeds"].status == "same" and out["split_fractions"].status == "same"
    assert (out["fastai"].status, out["torch"].status) == ("same", "different")
    assert out["device"].status == "different" and out["device"].rerun == "cpu (x86_64)"


def test_values_that_differ_between_runs_are_counted():
    rows = by_item(recipe_deviations({"phases": {"frozen": {"lr": 1e-3}}}, {}, [train(), train(lr=1e-2), train()],
                                     {}, {}, "cpu"))
    d = rows["phases.frozen.lr"]
    assert d.status == "different" and d.rerun == "0.001 in 2 of 3 runs, 0.01 in 1 of 3 runs" and d.how == "larger"


def test_config_values_where_train_json_does_not_record_them():
    config = {"split_seeds": [42, 7], "split_fractions": [0.8, 0.1, 0.1], "augmentation": {"do_flip": False}}
    rows = by_item(recipe_deviations({"split_seeds": [42], "split_fractions": [0.7, 0.15, 0.15],
                                      "augmentation": {"do_flip": True}}, {}, [train()], config, {}, "cpu"))
    assert rows["split_seeds"].status == "same" and "also split seeds [7]" in rows["split_seeds"].how
    assert rows["split_fractions"].status == "different"
    assert (rows["augmentation.do_flip"].declared, rows["augmentation.do_flip"].rerun) == ("true", "false")
    rows = by_item(recipe_deviations({"split_seeds": [42]}, {}, [train()], {"split_seeds": [1]}, {}, "cpu"))
    assert rows["split_seeds"].status == "different"


def test_device_compares_the_kind_and_undeclared_software_is_listed():
    rows = by_item(recipe_deviations({}, {"device": "cuda"}, [train(device="cuda:0 (NVIDIA H100)")], {},
                                     {"torch": "2.9.1"}, "cpu"))
    assert rows["device"].status == "same"
    assert rows["torch"].status == "not declared" and rows["torch"].rerun == "2.9.1"
    assert all(d.status == "not declared" for d in rows.values() if d.item != "device")


def test_formatting_and_equality():
    assert [format_value(v) for v in (True, None, 1e-3, [0.7, 0.15], 20)] == ["true", "null", "0.001", "[0.7, 0.15]",
                                                                             "20"]
    assert same_value(0.1 + 0.2, 0.3) and not same_value(True, 1) and same_value("MPS ", "mps")
    assert same_value([0.7, 0.15, 0.15], (0.7, 0.15, 0.15)) and not same_value(None, 0)
