"""Recipe variants: named overrides of recipe keys, deep-merged onto the base config (config key `variants`)."""

from __future__ import annotations

import copy
from pathlib import Path

from leukoreport.base.errors import LeukoError
from leukoreport.config.checks import check_config

__all__ = ["RECIPE_KEYS", "SHARED_KEYS", "base_config", "check_overrides", "deep_merge", "reference_variant",
           "variant_configs", "variant_root"]

# Keys a variant may override: the training recipe and how it is evaluated.
RECIPE_KEYS = ("pretrained", "size", "batch_size", "schedule", "phases", "augmentation", "stain_augmentation",
               "tta", "precision", "channels_last", "deterministic")
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
