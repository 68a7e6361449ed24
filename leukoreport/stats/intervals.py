"""Confidence intervals: Wilson, Newcombe difference, and BCa bootstrap of class-balanced metrics."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from leukoreport.base.errors import LeukoError
from leukoreport.base.validation import check_confidence, check_counts, check_positive_int

__all__ = ["BATCH_ELEMENTS", "BootstrapCI", "balanced_accuracy", "bootstrap_batch", "bootstrap_ci", "macro_f1",
           "newcombe_difference", "wilson"]

BATCH_ELEMENTS = 2_000_000  # values per bootstrap batch (resamples x images): about 16 MB of int64 per array


def _wilson(k: int, n: int, z: float) -> tuple[float, float]:
    """Wilson score interval of k/n for the normal quantile z, clipped to [0, 1]."""
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def wilson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval (no continuity correction) for k successes of n, clipped to [0, 1]."""
    check_counts("wilson", k, n)
    z = float(stats.norm.ppf(0.5 + check_confidence("wilson", confidence) / 2))
    return _wilson(int(k), int(n), z)


def newcombe_difference(k1: int, n1: int, k2: int, n2: int,
                        confidence: float = 0.95) -> tuple[float, float]:
    """Interval for p1 - p2 of two independent proportions: Newcombe (1998) method 10 (hybrid score)."""
    where = "newcombe_difference"
    check_counts(where, k1, n1, "k1", "n1")
    check_counts(where, k2, n2, "k2", "n2")
    z = float(stats.norm.ppf(0.5 + check_confidence(where, confidence) / 2))
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = _wilson(int(k1), int(n1), z)
    l2, u2 = _wilson(int(k2), int(n2), z)
    low = p1 - p2 - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = p1 - p2 + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return max(-1.0, low), min(1.0, high)


# ---------------------------------------------------------------- vectorised class-balanced metrics

def _as_labels(where: str, name: str, values, n_classes: int) -> np.ndarray:
    """`values` as an int64 array of class indices in 0..n_classes-1, else LeukoError."""
    arr = np.asarray(values)
    if arr.dtype.kind == "f" and (arr.size == 0 or (np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)))):
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise LeukoError(f"{where}: {name} must hold integer class indices, got dtype {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() >= n_classes):
        bad = arr[(arr < 0) | (arr >= n_classes)].ravel()[:5].tolist()
        raise LeukoError(f"{where}: {name} has labels outside 0..{n_classes - 1}: {bad}")
    return arr.astype(np.int64, copy=False)


def _check_pair(where: str, y_true, y_pred, n_classes: int, axis: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Validated (y_true, y_pred, n_classes) with the sample axis moved last."""
    n_classes = check_positive_int(where, "n_classes", n_classes)
    yt = _as_labels(where, "y_true", y_true, n_classes)
    yp = _as_labels(where, "y_pred", y_pred, n_classes)
    if yt.shape != yp.shape:
        raise LeukoError(f"{where}: y_true has shape {yt.shape} but y_pred has shape {yp.shape}")
    if yt.ndim == 0:
        raise LeukoError(f"{where}: y_true and y_pred must be arrays, not scalars")
    if not -yt.ndim <= axis < yt.ndim:
        raise LeukoError(f"{where}: axis = {axis} is out of range for {yt.ndim}-d input")
    yt, yp = np.moveaxis(yt, axis, -1), np.moveaxis(yp, axis, -1)
    if yt.shape[-1] == 0:
        raise LeukoError(f"{where}: y_true and y_pred are empty along axis {axis}")
    return yt, yp, n_classes


def _counts(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> tuple[np.ndarray, ...]:
    """(true positives, support, predicted) per class, each of shape (..., n_classes)."""
    lead = y_true.shape[:-1]
    k = n_classes
    rows = int(np.prod(lead, dtype=np.int64))
    yt = y_true.reshape(rows, -1)
    yp = y_pred.reshape(rows, -1)
    offset = (np.arange(rows, dtype=np.int64) * (k * k))[:, None]
    cells = np.bincount((offset + yt * k + yp).ravel(), minlength=rows * k * k).reshape(rows, k, k)
    tp = np.diagonal(cells, axis1=1, axis2=2)
    support = cells.sum(axis=2)
    predicted = cells.sum(axis=1)
    return tuple(a.reshape(*lead, k) for a in (tp, support, predicted))


def _mean_over_present(per_class: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Mean of `per_class` over the classes flagged in `present`, along the last axis."""
    total = np.where(present, per_class, 0.0).sum(axis=-1)
    return total / present.sum(axis=-1)


def _balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Mean recall over present classes along the last axis (no input checks)."""
    tp, support, _ = _counts(y_true, y_pred, n_classes)
    present = support > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = tp / support
    return _mean_over_present(recall, present)


def _macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Mean F1 over present classes along the last axis (no input checks)."""
    tp, support, predicted = _counts(y_true, y_pred, n_classes)
    present = support > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = 2.0 * tp / (support + predicted).astype(float)
    return _mean_over_present(f1, present)


def balanced_accuracy(y_true, y_pred, n_classes: int, axis: int = -1) -> np.ndarray | float:
    """Mean recall over the classes present in y_true, along `axis`; a float for 1-D input."""
    yt, yp, k = _check_pair("balanced_accuracy", y_true, y_pred, n_classes, axis)
    out = _balanced_accuracy(yt, yp, k)
    return float(out) if out.ndim == 0 else out


def macro_f1(y_true, y_pred, n_classes: int, axis: int = -1) -> np.ndarray | float:
    """Mean F1 over the classes present in y_true, along `axis`; a float for 1-D input."""
    yt, yp, k = _check_pair("macro_f1", y_true, y_pred, n_classes, axis)
    out = _macro_f1(yt, yp, k)
    return float(out) if out.ndim == 0 else out


_STATISTICS: dict[str, Callable[[np.ndarray, np.ndarray, int], np.ndarray]] = {
    "balanced_accuracy": _balanced_accuracy,
    "macro_f1": _macro_f1,
}


# ---------------------------------------------------------------- bootstrap

@dataclass
class BootstrapCI:
    """A point estimate with its bootstrap interval; low/high are None when degenerate."""

    value: float
    low: float | None
    high: float | None
    confidence: float
    n_resamples: int
    method: str
    degenerate: bool

    def to_dict(self) -> dict:
        """Plain JSON types."""
        return asdict(self)


def bootstrap_batch(n: int) -> int:
    """Resamples (and jackknife samples) per batch, so that a batch holds about ``BATCH_ELEMENTS`` values: memory
    stays bounded as n grows, and the interval is the same as unbatched (the generator's draws come in order)."""
    return max(1, BATCH_ELEMENTS // max(int(n), 1))


def bootstrap_ci(y_true, y_pred, n_classes: int, statistic: str, confidence: float = 0.95,
                 n_resamples: int = 9999, seed: int = 0) -> BootstrapCI:
    """Paired BCa bootstrap interval of "balanced_accuracy" or "macro_f1" over images."""
    where = "bootstrap_ci"
    if statistic not in _STATISTICS:
        raise LeukoError(f"{where}: statistic = {statistic!r} is not one of {sorted(_STATISTICS)}")
    confidence = check_confidence(where, confidence)
    check_positive_int(where, "n_resamples", n_resamples)
    yt, yp, k = _check_pair(where, y_true, y_pred, n_classes, -1)
    if yt.ndim != 1:
        raise LeukoError(f"{where}: y_true and y_pred must be 1-d, got shape {yt.shape}")
    func = _STATISTICS[statistic]
    value = float(func(yt, yp, k))

    def vectorised(t: np.ndarray, p: np.ndarray, axis: int = -1) -> np.ndarray:
        return func(np.moveaxis(t, axis, -1), np.moveaxis(p, axis, -1), k)

    low = high = None
    if yt.size >= 2:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            res = stats.bootstrap((yt, yp), vectorised, n_resamples=int(n_resamples), vectorized=True,
                                  paired=True, confidence_level=confidence, method="BCa",
                                  rng=np.random.default_rng(seed), batch=bootstrap_batch(yt.size))
        lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if math.isfinite(lo) and math.isfinite(hi):
            low, high = lo, hi
    return BootstrapCI(value=value, low=low, high=high, confidence=confidence,
                       n_resamples=int(n_resamples), method="BCa", degenerate=low is None)
