"""Calibration of class probabilities: reliability table, ECE, Brier score and log loss."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from leukoreport.base.errors import LeukoError
from leukoreport.base.validation import check_positive_int

__all__ = ["SUM_TOLERANCE", "Calibration", "bin_index", "brier_score", "calibration", "expected_calibration_error",
           "log_loss", "reliability_table"]

SUM_TOLERANCE = 1e-3


def _check_inputs(where: str, probs, labels) -> tuple[np.ndarray, np.ndarray]:
    """Validated (probs as float (n, K), labels as int64 (n,)), else LeukoError."""
    try:
        raw = np.asarray(probs)
    except ValueError as exc:
        raise LeukoError(f"{where}: probs is not a rectangular array: {exc}") from None
    if raw.dtype.kind not in "biuf":
        raise LeukoError(f"{where}: probs must be numeric, got dtype {raw.dtype}")
    p = raw.astype(float)
    if p.ndim != 2:
        raise LeukoError(f"{where}: probs must be 2-d (n, K), got shape {p.shape}")
    if p.shape[0] == 0 or p.shape[1] == 0:
        raise LeukoError(f"{where}: probs is empty (shape {p.shape})")
    if not np.all(np.isfinite(p)):
        raise LeukoError(f"{where}: probs has NaN or infinite values")
    if np.any(p < 0):
        raise LeukoError(f"{where}: probs has negative values")
    sums = p.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1) > SUM_TOLERANCE)
    if bad.size:
        raise LeukoError(f"{where}: probs row {int(bad[0])} sums to {sums[bad[0]]:.6g}, not 1 "
                         f"(tolerance {SUM_TOLERANCE})")
    y = np.asarray(labels)
    if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
        y = y.astype(np.int64)
    if y.dtype.kind not in "iu":
        raise LeukoError(f"{where}: labels must be integer class indices, got dtype {y.dtype}")
    if y.shape != (p.shape[0],):
        raise LeukoError(f"{where}: labels has shape {y.shape} but probs has {p.shape[0]} rows")
    k = p.shape[1]
    if y.min() < 0 or y.max() >= k:
        out = y[(y < 0) | (y >= k)][:5].tolist()
        raise LeukoError(f"{where}: labels outside 0..{k - 1}: {out}")
    return p, y.astype(np.int64, copy=False)


def bin_index(confidence: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin of each confidence: bin b is (b/n_bins, (b+1)/n_bins], with 0 in bin 0."""
    edges = np.arange(n_bins + 1) / n_bins
    return np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)


def _table(p: np.ndarray, y: np.ndarray, n_bins: int) -> pd.DataFrame:
    """Reliability table of validated inputs."""
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(float)
    b = bin_index(confidence, n_bins)
    count = np.bincount(b, minlength=n_bins)
    with np.errstate(divide="ignore", invalid="ignore"):
        conf = np.bincount(b, weights=confidence, minlength=n_bins) / count
        acc = np.bincount(b, weights=correct, minlength=n_bins) / count
    edges = np.arange(n_bins + 1) / n_bins
    return pd.DataFrame({
        "bin": np.arange(n_bins), "lower": edges[:-1], "upper": edges[1:], "count": count,
        "confidence": conf, "accuracy": acc, "gap": acc - conf,
    })


def reliability_table(probs, labels, n_bins: int = 15) -> pd.DataFrame:
    """One row per equal-width confidence bin (lower, upper]; empty bins have NaN confidence/accuracy."""
    n_bins = check_positive_int("reliability_table", "n_bins", n_bins)
    p, y = _check_inputs("reliability_table", probs, labels)
    return _table(p, y, n_bins)


def _ece(table: pd.DataFrame) -> float:
    """Count-weighted mean |gap| over the non-empty bins of a reliability table."""
    filled = table[table["count"] > 0]
    return float((filled["count"] * filled["gap"].abs()).sum() / table["count"].sum())


def expected_calibration_error(probs, labels, n_bins: int = 15) -> float:
    """ECE: sum over bins of (count / n) * |accuracy - confidence|."""
    n_bins = check_positive_int("expected_calibration_error", "n_bins", n_bins)
    p, y = _check_inputs("expected_calibration_error", probs, labels)
    return _ece(_table(p, y, n_bins))


def _brier(p: np.ndarray, y: np.ndarray) -> float:
    """Multi-class Brier score of validated inputs."""
    onehot = np.zeros_like(p)
    onehot[np.arange(len(y)), y] = 1.0
    return float(np.mean(np.sum((p - onehot) ** 2, axis=1)))


def brier_score(probs, labels) -> float:
    """Mean over images of sum_k (p_k - 1[k = label])^2, range 0..2."""
    p, y = _check_inputs("brier_score", probs, labels)
    return _brier(p, y)


def _log_loss(p: np.ndarray, y: np.ndarray, eps: float) -> float:
    """Mean negative log probability of the true class, clipped at eps."""
    return float(np.mean(-np.log(np.clip(p[np.arange(len(y)), y], eps, 1.0))))


def log_loss(probs, labels, eps: float = 1e-15) -> float:
    """Mean of -ln(clip(p_true, eps, 1))."""
    if not isinstance(eps, (int, float)) or isinstance(eps, bool) or not 0 < eps < 1:
        raise LeukoError(f"log_loss: eps = {eps!r} is not strictly between 0 and 1")
    p, y = _check_inputs("log_loss", probs, labels)
    return _log_loss(p, y, float(eps))


def _json_value(value):
    """A plain JSON value: numpy scalars unwrapped, NaN and infinities to None."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass
class Calibration:
    """Calibration summary of one set of predictions; `bins` are reliability-table rows."""

    ece: float
    brier: float
    log_loss: float
    n_bins: int
    bins: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        """Plain JSON types; NaN becomes None."""
        return {
            "ece": _json_value(float(self.ece)),
            "brier": _json_value(float(self.brier)),
            "log_loss": _json_value(float(self.log_loss)),
            "n_bins": int(self.n_bins),
            "bins": [{str(k): _json_value(v) for k, v in row.items()} for row in self.bins],
        }


def calibration(probs, labels, n_bins: int = 15) -> Calibration:
    """ECE, Brier score, log loss and the reliability table of one set of predictions."""
    n_bins = check_positive_int("calibration", "n_bins", n_bins)
    p, y = _check_inputs("calibration", probs, labels)
    table = _table(p, y, n_bins)
    return Calibration(ece=_ece(table), brier=_brier(p, y), log_loss=_log_loss(p, y, 1e-15),
                       n_bins=n_bins, bins=table.to_dict(orient="records"))
