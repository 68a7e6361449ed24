"""Numbers as the reports print them: percentages, intervals, mean ± SD, durations."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

__all__ = ["DASH", "NO_INTERVAL", "Estimate", "MeanSD", "accuracy_text", "estimate", "gap_estimate", "hms",
           "is_missing", "lr", "mean_sd", "num", "pct", "pct1", "points", "seconds", "yes_no"]

DASH = "—"
NO_INTERVAL = "n/a"


def is_missing(x: Any) -> bool:
    """Whether `x` is None or a float NaN (printed as a dash)."""
    return x is None or (isinstance(x, float) and math.isnan(x))


def pct(x: float | None, digits: int = 2) -> str:
    """0.99467 -> '99.47%'; None -> '—'."""
    return DASH if is_missing(x) else f"{100 * float(x):.{digits}f}%"


def num(x: float | None, digits: int = 4) -> str:
    """Fixed decimals; None -> '—'."""
    return DASH if is_missing(x) else f"{float(x):.{digits}f}"


def lr(x: float | None) -> str:
    """Learning rate, shortest form: 0.001 -> '0.001', 1e-05 -> '1e-05'."""
    return DASH if is_missing(x) else f"{float(x):g}"


def seconds(x: float | None) -> str:
    """812.43 -> '812.4 s'."""
    return DASH if is_missing(x) else f"{float(x):.1f} s"


def hms(x: float | None) -> str:
    """812.4 -> '0:13:32'."""
    if is_missing(x):
        return DASH
    total = int(round(float(x)))
    return f"{total // 3600}:{total % 3600 // 60:02d}:{total % 60:02d}"


def yes_no(x: bool | None) -> str:
    return DASH if x is None else ("yes" if x else "no")


def accuracy_text(accuracy: float | None, n_correct: int, n: int) -> str:
    """'99.47% (373/375)'."""
    return f"{pct(accuracy)} ({n_correct}/{n})"


@dataclass(frozen=True)
class MeanSD:
    """A formatted 'mean ± SD'; str() gives the one-line text, the template may stack the parts."""

    mean: str
    sd: str

    def __str__(self) -> str:
        return self.mean if self.sd == "" else f"{self.mean} ± {self.sd}"


def mean_sd(values: list[float | None], kind: str) -> MeanSD:
    """Mean and sample SD of values; kind 'pct' (SD in percentage points), 'num' or 'seconds'."""
    vals = [float(v) for v in values if not is_missing(v)]
    if len(vals) < 2:
        return MeanSD(DASH, "")
    mean, sd = statistics.mean(vals), statistics.stdev(vals)
    if kind == "pct":
        return MeanSD(f"{100 * mean:.2f}%", f"{100 * sd:.2f}")
    if kind == "seconds":
        return MeanSD(f"{mean:.1f} s", f"{sd:.1f} s")
    return MeanSD(f"{mean:.4f}", f"{sd:.4f}")


def pct1(x: float | None) -> str:
    """0.99467 -> '99.5%' (one decimal, the precision of the interval tables)."""
    return pct(x, 1)


@dataclass(frozen=True)
class Estimate:
    """A formatted value with its interval; str() gives '99.5% [98.1–99.9]'."""

    value: str
    interval: str

    def __str__(self) -> str:
        return self.value if not self.interval else f"{self.value} [{self.interval}]"


def estimate(value: float | None, low: float | None, high: float | None, kind: str = "pct") -> Estimate:
    """Value and interval as percentages with one decimal (kind 'pct') or three decimals ('num');
    a missing bound gives the interval 'n/a'."""
    fmt = pct1 if kind == "pct" else (lambda x: num(x, 3))
    if is_missing(value):
        return Estimate(DASH, "")
    if is_missing(low) or is_missing(high):
        return Estimate(fmt(value), NO_INTERVAL)
    bounds = f"{fmt(low).rstrip('%')}–{fmt(high).rstrip('%')}"
    return Estimate(fmt(value), bounds)


def points(x: float) -> str:
    """A difference of proportions in signed percentage points: -0.0861 -> '−8.6'."""
    text = f"{100 * float(x):+.1f}"
    return text.replace("-", "\u2212")


def gap_estimate(gap: float | None, low: float | None, high: float | None) -> Estimate:
    """'−8.6 pp [−35.2 to +1.3]' for a difference of two accuracies."""
    if is_missing(gap):
        return Estimate(DASH, "")
    if is_missing(low) or is_missing(high):
        return Estimate(f"{points(gap)} pp", NO_INTERVAL)
    return Estimate(f"{points(gap)} pp", f"{points(low)} to {points(high)}")
