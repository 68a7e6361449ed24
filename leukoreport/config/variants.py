"""Recipe variants: named overrides of recipe keys, deep-merged onto the base config (config key `variants`)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from leukoreport.base.errors import LeukoError
from leukoreport.config.checks import check_config

__all__ = ["OPTIONAL_TRAIN_KEYS", "RECIPE_KEYS", "SHARED_KEYS", "TRAIN_KEYS", "base_config", "canonical",
           "check_overrides", "deep_merge", "reference_variant", "shared_training", "train_params", "variant_configs",
           "variant_root"]

# Keys a variant may override: the training recipe and how it is evaluated.
RECIPE_KEYS = ("pretrained", "arch", "norm", "size", "batch_size", "schedule", "phases", "augmentation",
               "stain_augmentation", "tta", "evaluation", "precision", "channels_last", "deterministic")
# The train job's parameters (Snakemake reruns it when they change; model.json's recipe_hash is their hash).
TRAIN_KEYS = ("size", "batch_size", "pretrained", "schedule", "phases", "augmentation", "num_workers", "device",
              "precision", "channels_last", "deterministic", "stain_augmentation", "max_batches")
# Training keys passed only when they differ from the paper's recipe, so that its train params (hence its jobs
# and recipe_hash) stay what they were before these keys existed. `evaluation` is no training key.
OPTIONAL_TRAIN_KEYS = {"arch": "resnet18", "norm": "batch"}  # the paper's: training.normalisation reads them here
# Keys every variant must share, so that all variants see the same images, splits and seeds.
SHARED_KEYS = ("data_dir", "data_provenance", "external", "split_seeds", "split_fractions", "max_per_class", "seeds",
               "class_aliases")


def deep_merge(base: dict, override: dict) -> dict:
    """A copy of `base` with `override` merged in: nested mappings key by key, everything else replaced."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def check_overrides(name: str, overrides: dict) -> None:
    """LeukoError naming `variants.NAME.KEY` for a key that must be shared or is not a recipe key."""
    if not isinstance(overrides, dict):
        raise LeukoError(f"config key variants.{name}: must be a mapping of recipe keys (or {{}}), "
                         f"got {type(overrides).__name__}")
    for key in overrides:
        if key in SHARED_KEYS:
            raise LeukoError(f"config key variants.{name}.{key}: must be the same for every variant; "
                             f"set it at the top level")
        if key not in RECIPE_KEYS:
            raise LeukoError(f"config key variants.{name}.{key}: not a recipe key a variant may change "
                             f"({', '.join(RECIPE_KEYS)})")


def canonical(value):
    """``value`` with the keys of every mapping in it sorted: Snakemake compares params by their text, so the order
    of keys in a config file would otherwise rerun jobs."""
    if isinstance(value, dict):
        return {key: canonical(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [canonical(item) for item in value]
    return value


def train_params(config: dict) -> dict:
    """The training part of a (validated, defaults filled) config, mappings in sorted key order: ``TRAIN_KEYS``,
    then each ``OPTIONAL_TRAIN_KEYS`` key whose value is not the paper's."""
    keys = list(TRAIN_KEYS) + [k for k, default in OPTIONAL_TRAIN_KEYS.items() if config.get(k, default) != default]
    missing = [k for k in keys if k not in config]
    if missing:
        raise LeukoError(f"config key {missing[0]}: missing (the config was not validated against the schema)")
    return {key: canonical(config[key]) for key in keys}


def shared_training(variants: dict[str, dict]) -> dict[str, str]:
    """Variant -> the earlier variant (in config order) whose training parameters it shares, for every variant that
    differs from another only in options applied after training (e.g. `evaluation`, `tta`): its models are reused."""
    first: dict[str, str] = {}
    shared = {}
    for name, cfg in variants.items():
        key = json.dumps(train_params(cfg), sort_keys=True)
        if key in first:
            shared[name] = first[key]
        else:
            first[key] = name
    return shared


def base_config(config: dict) -> dict:
    """The config without `variants` and `reference`: what every variant starts from."""
    return {k: v for k, v in config.items() if k not in ("variants", "reference")}


def variant_configs(config: dict, schema_path: str | Path | None = None, base_dir: str | Path = ".") -> dict[str, dict]:
    """Variant name -> its full config (base config with the overrides merged); empty without `variants`.

    With `schema_path` each merged config is validated too, errors named `variants.NAME.KEY`.
    """
    variants = config.get("variants") or {}
    if not isinstance(variants, dict):
        raise LeukoError(f"config key variants: must be a mapping of name -> overrides, got {type(variants).__name__}")
    base = base_config(config)
    out = {}
    for name, overrides in variants.items():
        overrides = {} if overrides is None else overrides
        check_overrides(name, overrides)
        merged = deep_merge(base, overrides)
        if schema_path is not None:
            try:
                check_config(merged, schema_path, base_dir)
            except LeukoError as exc:
                raise LeukoError(str(exc).replace("config key ", f"config key variants.{name}.", 1)) from None
        out[str(name)] = merged
    reference_variant(config)
    return out


def reference_variant(config: dict) -> str | None:
    """The variant the others are compared with: `reference`, else the first variant; None without variants."""
    variants = config.get("variants") or {}
    reference = config.get("reference")
    if not variants:
        if reference is not None:
            raise LeukoError(f"config key reference: '{reference}' given but there are no variants")
        return None
    if reference is None:
        return str(next(iter(variants)))
    if reference not in variants:
        raise LeukoError(f"config key reference: '{reference}' is not a variant ({', '.join(map(str, variants))})")
    return str(reference)


def variant_root(name: str | None, results: str | Path = "results") -> Path:
    """The results folder of one variant (`results/variants/NAME`), or `results` for the single recipe."""
    return Path(results) if name is None else Path(results) / "variants" / name
