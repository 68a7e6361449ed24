"""The paper's declared recipe and software against what each run did (train.json and the config), item by item:
same, different (how) or not declared (docs/claims.md, "Deviations")."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

from leukoreport.config.claims import flatten

__all__ = ["RECIPE_ITEMS", "SOFTWARE_ITEMS", "STATUSES", "Deviation", "deviation_text", "format_value",
           "recipe_deviations", "same_value"]

STATUSES = ("same", "different", "not declared")
_PHASE_KEYS = ("lr", "max_epochs", "patience")
_AUGMENTATION = ("max_rotate", "do_flip", "flip_vert", "min_scale", "max_zoom", "max_warp", "max_lighting",
                 "p_affine", "p_lighting")
# Every recipe item the table lists, declared or not, in this order (items the claims file adds come after).
RECIPE_ITEMS = ("pretrained", "size", "batch_size", "schedule", "max_per_class", "split_fractions", "split_seeds",
                *(f"phases.{p}.{k}" for p in ("frozen", "unfrozen") for k in _PHASE_KEYS),
                *(f"augmentation.{k}" for k in _AUGMENTATION), "stain_augmentation.method", "tta")
SOFTWARE_ITEMS = ("fastai", "torch", "device")
_FROM_TRAIN = ("pretrained", "size", "batch_size", "schedule")


@dataclass(frozen=True)
class Deviation:
    """One recipe or software item: the paper's value, the rerun's, and whether they agree."""

    item: str
    declared: str
    rerun: str
    status: str  # "same" | "different" | "not declared"
    how: str


def format_value(value: Any) -> str:
    """A recipe value as the tables print it: true/false, null, 0.001, [0.7, 0.15, 0.15]."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    return str(value)


def same_value(a: Any, b: Any) -> bool:
    """Equal as recipe values: numbers to 1e-9 relative, strings ignoring case and spaces, lists item by item."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b if isinstance(a, bool) and isinstance(b, bool) else False
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, str) and isinstance(b, str):
        return a.strip().lower() == b.strip().lower()
    return a == b


def _lookup(config: dict, dotted: str) -> tuple[bool, Any]:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _phase_value(train: dict, phase: str, key: str) -> tuple[bool, Any]:
    for entry in train.get("phases") or []:
        if bool(entry.get("frozen")) == (phase == "frozen") and key in entry:
            return True, entry[key]
    return False, None


def _run_values(item: str, trains: list[dict], config: dict) -> list[Any]:
    """The item's value in every run (train.json where it records it), else the config's one value ([] if none)."""
    values = []
    for train in trains:
        if item in _FROM_TRAIN and item in train:
            values.append(train[item])
        elif item.startswith("phases.") and len(item.split(".")) == 3:
            found, value = _phase_value(train, *item.split(".")[1:])
            if found:
                values.append(value)
        elif item == "stain_augmentation.method" and isinstance(train.get("stain_augmentation"), dict):
            values.append(train["stain_augmentation"].get("method"))
    if values and len(values) == len(trains):
        return values
    found, value = _lookup(config, item)
    return [value] * max(1, len(trains)) if found else []


def _device_kind(text: str) -> str:
    """'cuda:0 (NVIDIA H100)' -> 'cuda'; 'mps' -> 'mps'; 'cpu (x86_64)' -> 'cpu'."""
    return text.strip().split(" ")[0].split(":")[0].lower()


def _summary(values: list[str]) -> str:
    counts = Counter(values)
    if len(counts) == 1:
        value = values[0]
        return value
    return ", ".join(f"{v} in {c} of {len(values)} runs" for v, c in counts.most_common())


def _how(item: str, declared: Any, rerun: Any) -> str:
    if item == "pretrained":
        return "random initialisation" if rerun is False else "ImageNet initialisation"
    if item == "max_per_class":
        return f"at most {rerun} images per class" if rerun is not None else "all images"
    if item in ("fastai", "torch"):
        return "another version"
    if item == "device":
        return "another device"
    if isinstance(declared, (int, float)) and isinstance(rerun, (int, float)) and not isinstance(rerun, bool):
        return "smaller" if rerun < declared else "larger"
    return "another value"


def _recipe_item(item: str, declared: dict[str, Any], trains: list[dict], config: dict) -> Deviation:
    values = _run_values(item, trains, config)
    rerun = _summary([format_value(v) for v in values]) if values else "not recorded"
    if item not in declared:
        return Deviation(item, "not declared", rerun, "not declared", "not stated in the paper")
    want = declared[item]
    if not values:
        return Deviation(item, format_value(want), rerun, "different", "the run does not record it")
    if item == "split_seeds" and isinstance(want, list) and all(isinstance(v, list) for v in values):
        seeds = [int(s) for s in values[0]]
        if set(want) <= set(seeds):
            extra = [s for s in seeds if s not in want]
            how = f"also split seeds {format_value(extra)} (other test sets)" if extra else ""
            return Deviation(item, format_value(want), format_value(seeds), "same", how)
        return Deviation(item, format_value(want), format_value(seeds), "different", "other test sets")
    wrong = [v for v in values if not same_value(want, v)]
    if not wrong:
        return Deviation(item, format_value(want), rerun, "same", "")
    return Deviation(item, format_value(want), rerun, "different", _how(item, want, wrong[0]))


def _software_item(item: str, software: dict, trains: list[dict], versions: dict[str, str],
                   device: str) -> Deviation:
    if item == "device":
        runs = [str(t["device"]) for t in trains if t.get("device")] or [device]
        rerun = _summary(runs)
        if item not in software:
            return Deviation(item, "not declared", rerun, "not declared", "not stated in the paper")
        same = all(_device_kind(r) == _device_kind(software[item]) for r in runs)
        return Deviation(item, software[item], rerun, "same" if same else "different",
                         "" if same else "another device")
    rerun = versions.get(item, "not recorded")
    if item not in software:
        return Deviation(item, "not declared", rerun, "not declared", "not stated in the paper")
    same = same_value(str(software[item]), str(rerun))
    return Deviation(item, software[item], rerun, "same" if same else "different", "" if same else "another version")


def recipe_deviations(recipe: dict, software: dict, trains: list[dict], config: dict, versions: dict[str, str],
                      device: str) -> list[Deviation]:
    """Each recipe item (RECIPE_ITEMS, then any other declared key) and software item (fastai, torch, device, then
    any other declared one) with the paper's value and the runs' (train.json where it records it, else `config`)."""
    declared = flatten(recipe)
    items = list(RECIPE_ITEMS) + [k for k in declared if k not in RECIPE_ITEMS]
    rows = [_recipe_item(item, declared, trains, config) for item in items]
    names = list(SOFTWARE_ITEMS) + [k for k in software if k not in SOFTWARE_ITEMS]
    rows += [_software_item(item, software, trains, versions, device) for item in names]
    return rows


def deviation_text(d: Deviation) -> str:
    """'pretrained: declared true, rerun false (random initialisation)'."""
    return f"{d.item}: declared {d.declared}, rerun {d.rerun}" + (f" ({d.how})" if d.how else "")
