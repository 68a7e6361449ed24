"""The metric catalogue: every metric the reports compare, with its labels, direction and number format."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CATALOGUE", "HIGHER_IS_BETTER", "METRICS", "Metric", "higher_is_better", "label", "long_label",
           "metric", "wrapped_label"]


@dataclass(frozen=True)
class Metric:
    """One metric: its key in metrics.json, short and long labels, direction and how the reports print it."""

    key: str
    label: str
    long_label: str
    higher_is_better: bool
    format: str  # "pct": a share printed as a percentage


CATALOGUE: tuple[Metric, ...] = (
    Metric("accuracy", "accuracy", "accuracy", True, "pct"),
    Metric("balanced_accuracy", "balanced accuracy", "balanced accuracy", True, "pct"),
    Metric("macro_f1", "macro F1", "macro F1", True, "pct"),
    Metric("ece", "ECE", "calibration error (ECE)", False, "pct"),
)
METRICS: tuple[str, ...] = tuple(m.key for m in CATALOGUE)
HIGHER_IS_BETTER: dict[str, bool] = {m.key: m.higher_is_better for m in CATALOGUE}
_BY_KEY = {m.key: m for m in CATALOGUE}


def metric(key: str) -> Metric | None:
    """The catalogue entry of `key`, or None for a key outside the catalogue."""
    return _BY_KEY.get(key)


def label(key: str) -> str:
    """Short label ('ECE'); an unknown key is returned as it is."""
    m = metric(key)
    return m.label if m else key


def long_label(key: str) -> str:
    """Long label for tables ('calibration error (ECE)'); per-class recall keys read 'recall of CLASS'."""
    m = metric(key)
    if m:
        return m.long_label
    return "recall of " + key[len("recall_"):] if key.startswith("recall_") else key


def wrapped_label(key: str, width: int = 10) -> str:
    """Short label broken after its first word when longer than `width` characters (figure axes)."""
    text = label(key)
    return text.replace(" ", "\n", 1) if len(text) > width else text


def higher_is_better(key: str) -> bool:
    """Whether a larger value of `key` is better (True for keys outside the catalogue)."""
    return HIGHER_IS_BETTER.get(key, True)
