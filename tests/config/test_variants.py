"""Recipe variants in config: deep merge, the reference, and one-line errors for keys a variant must not change."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from leukoreport.base.errors import LeukoError
from leukoreport.config.checks import check_config
from leukoreport.config.variants import (
    RECIPE_KEYS,
    SHARED_KEYS,
    deep_merge,
    reference_variant,
    shared_training,
    train_params,
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
    ({"arch": "resnet101"}, "variants.odd.arch: 'resnet101' is not one of"),
    ({"norm": "layer"}, "variants.odd.norm: 'layer' is not one of"),
    ({"evaluation": {"adabn": "yes"}}, "variants.odd.evaluation.adabn"),
    ({"evaluation": {"stain_normalisation": "vahadane"}}, "variants.odd.evaluation.stain_normalisation"),
    ({"evaluation": {"tta": True}}, "variants.odd.evaluation"),
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


@pytest.mark.parametrize("name", ["variants.yaml", "smoke_variants.yaml", "generalisation.yaml"])
def test_shipped_variant_configs_are_valid(name):
    cfg = yaml.safe_load((ROOT / "config" / name).read_text())
    out = variant_configs(cfg, SCHEMA, ROOT)
    assert len(out) >= 2 and reference_variant(cfg) in out


# the train params before `arch`, `norm` and `evaluation` existed (workflow/rules/common.smk of that version)
PAPER_TRAIN_KEYS = ["size", "batch_size", "pretrained", "schedule", "phases", "augmentation", "num_workers", "device",
                    "precision", "channels_last", "deterministic", "stain_augmentation", "max_batches"]


def _sorted(value):
    return {k: _sorted(value[k]) for k in sorted(value)} if isinstance(value, dict) else value


@pytest.mark.parametrize("name", ["config.yaml", "smoke.yaml"])
def test_default_train_params_are_unchanged(name):
    """The paper's recipe keeps its train params (hence its Snakemake jobs and model.json's recipe_hash)."""
    import hashlib
    import json

    from leukoreport.base.checksums import sha256_json

    cfg = check_config(yaml.safe_load((ROOT / "config" / name).read_text()), SCHEMA, ROOT)
    params = train_params(cfg)
    assert list(params) == PAPER_TRAIN_KEYS
    assert params == {k: _sorted(cfg[k]) for k in PAPER_TRAIN_KEYS}
    assert all(list(params[k]) == sorted(params[k]) for k in params if isinstance(params[k], dict))
    text = json.dumps({k: _sorted(cfg[k]) for k in PAPER_TRAIN_KEYS}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False)
    assert sha256_json(params) == hashlib.sha256(text.encode()).hexdigest()
    assert cfg["arch"] == "resnet18" and cfg["norm"] == "batch"
    assert cfg["evaluation"] == {"adabn": False, "stain_normalisation": "none"}


def test_arch_and_norm_enter_the_train_params_only_when_changed_and_evaluation_never():
    out = variant_configs(with_variants({"paper": {}, "gn": {"norm": "group"}, "r50": {"arch": "resnet50"},
                                         "adabn": {"evaluation": {"adabn": True}},
                                         "macenko": {"evaluation": {"stain_normalisation": "macenko"}}}),
                          SCHEMA, ROOT)
    paper = train_params(out["paper"])
    assert train_params(out["gn"]) == {**paper, "norm": "group"}
    assert train_params(out["r50"]) == {**paper, "arch": "resnet50"}
    assert train_params(out["adabn"]) == paper == train_params(out["macenko"])
    assert out["adabn"]["evaluation"] == {"adabn": True, "stain_normalisation": "none"}
    assert out["macenko"]["evaluation"] == {"adabn": False, "stain_normalisation": "macenko"}
    assert out["paper"]["evaluation"] == {"adabn": False, "stain_normalisation": "none"}


def test_train_params_of_an_unvalidated_config_name_the_key():
    with pytest.raises(LeukoError, match="^config key size: missing"):
        train_params({})


def test_generalisation_config_compares_the_papers_recipe_with_three_remedies():
    cfg = yaml.safe_load((ROOT / "config" / "generalisation.yaml").read_text())
    base = check_config(copy.deepcopy(cfg), SCHEMA, ROOT)
    out = variant_configs({**base, "variants": cfg["variants"], "reference": cfg["reference"]}, SCHEMA, ROOT)
    assert reference_variant(cfg) == "paper" and len(base["seeds"]) == 3 and base["pretrained"] is True
    assert {name: {k: v for k, v in c.items() if c[k] != out["paper"][k]} for name, c in out.items()} == {
        "paper": {}, "group_norm": {"norm": "group"},
        "stain_augmentation": {"stain_augmentation": {"method": "hed", "strength": 0.05}},
        "adabn": {"evaluation": {"adabn": True, "stain_normalisation": "none"}}}
    assert train_params(out["paper"]) == train_params(check_config(
        yaml.safe_load((ROOT / "config" / "config.yaml").read_text()), SCHEMA, ROOT))


def test_variants_differing_only_after_training_share_the_first_ones_models():
    """`evaluation` and `tta` change nothing in training: such a variant reuses the first variant with equal train
    params; a change of any train key (here `norm`, `size`) trains its own models."""
    cfg = check_config(with_variants({
        "paper": {}, "group": {"norm": "group"}, "adabn": {"evaluation": {"adabn": True}},
        "tta": {"tta": True}, "group_adabn": {"norm": "group", "evaluation": {"stain_normalisation": "reinhard"}},
        "small": {"size": 48}}), SCHEMA, ROOT)
    out = variant_configs(cfg, SCHEMA, ROOT)
    assert shared_training(out) == {"adabn": "paper", "tta": "paper", "group_adabn": "group"}
    expected = {}
    for name, c in out.items():  # independent: the first earlier variant whose params compare equal
        twin = next((other for other in out if other != name and train_params(out[other]) == train_params(c)), None)
        if twin is not None and list(out).index(twin) < list(out).index(name):
            expected[name] = twin
    assert shared_training(out) == expected
    assert shared_training({}) == {}
