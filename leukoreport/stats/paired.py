"""Paired statistics of two runs on the same images: paired bootstrap, sign-flip, Wilcoxon and McNemar tests.

The metrics (accuracy, balanced accuracy, macro F1, ECE) are computed as leukoreport.stats.intervals and
leukoreport.stats.calibration compute them; the pairs come from leukoreport.stats.run_files.match.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from leukoreport.base.errors import LeukoError
from leukoreport.base.metric_catalogue import HIGHER_IS_BETTER, METRICS
from leukoreport.base.validation import check_confidence, check_positive_int
from leukoreport.stats.calibration import bin_index, expected_calibration_error
from leukoreport.stats.intervals import balanced_accuracy, macro_f1
from leukoreport.stats.run_files import Pair

__all__ = ["BLOCK_ELEMENTS", "EXACT_SIGN_FLIPS", "N_BINS", "NO_DIFFERENCE", "RANDOM_SIGN_FLIPS", "TIE",
           "BootstrapDifference", "McNemar", "bootstrap_differences", "bootstrap_metrics", "direction", "mcnemar",
           "metric_value", "observed_difference", "observed_metric", "p_value", "pair_values", "paired_bootstrap",
           "sign_flip_test", "snap", "summarize_bootstrap", "wilcoxon_p"]

N_BINS = 15  # equal-width confidence bins of the ECE, as leukoreport.stats.calibration
EXACT_SIGN_FLIPS = 16  # enumerate all 2^k sign flips up to this many seeds
RANDOM_SIGN_FLIPS = 20000
BLOCK_ELEMENTS = 1 << 22  # resampled indices drawn per block (bounds memory for large test sets)
TIE = 1e-12  # differences smaller than this count as exactly zero (float noise of equal metrics)
NO_DIFFERENCE = "no difference detected"


@dataclass
class BootstrapDifference:
    """Mean over matched pairs of metric(A) − metric(B) with its paired-bootstrap percentile interval.

    p_a_better / p_b_better: share of resamples in which A / B is better (A − B > 0, or < 0 for the ECE).
    """

    metric: str
    difference: float
    low: float
    high: float
    p_a_better: float
    p_b_better: float
    confidence: float
    n_resamples: int
    seed: int
    method: str = "percentile"

    def to_dict(self) -> dict:
        """Plain JSON types."""
        return asdict(self)


@dataclass
class McNemar:
    """Discordant counts of one seed (b: only A right, c: only B right) and the exact two-sided p-value."""

    b: int
    c: int
    p: float

    def to_dict(self) -> dict:
        """Plain JSON types."""
        return asdict(self)


def _check_metric(metric: str) -> str:
    """`metric` when it is one of METRICS, else LeukoError."""
    if metric not in METRICS:
        raise LeukoError(f"metric = {metric!r} is not one of {list(METRICS)}")
    return metric


def _ece_key(bins: np.ndarray, hit: np.ndarray) -> np.ndarray:
    """2 × bin + hit (1 when the top class is right) of every image, as a small integer."""
    return (2 * bins + hit).astype(np.int16)


def _ece_rows(key: np.ndarray, confidence: np.ndarray, n_bins: int) -> np.ndarray:
    """ECE along the last axis from each image's key (_ece_key) and confidence: sum over bins of count/n |acc-conf|.

    Per row as calibration.expected_calibration_error on the same images (equal up to float rounding).
    """
    lead, n = key.shape[:-1], key.shape[-1]
    rows = int(np.prod(lead, dtype=np.int64))
    size = rows * 2 * n_bins
    flat = ((np.arange(rows, dtype=np.int64) * (2 * n_bins))[:, None] + key.reshape(rows, n)).ravel()
    cells = np.bincount(flat, minlength=size).reshape(rows, n_bins, 2)  # (no hit, hit) per bin
    conf = np.bincount(flat, weights=confidence.reshape(-1), minlength=size).reshape(rows, n_bins, 2).sum(axis=-1)
    count, acc = cells.sum(axis=-1), cells[..., 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        gap = np.where(count > 0, count * np.abs(acc / count - conf / count), 0.0)
    return (gap.sum(axis=-1) / n).reshape(lead)


def metric_value(metric: str, y_true: np.ndarray, y_pred: np.ndarray, n_classes: int,
                 confidence: np.ndarray | None = None, n_bins: int = N_BINS) -> np.ndarray | float:
    """Accuracy, balanced accuracy, macro F1 (over present classes) or ECE along the last axis.

    For "ece" y_pred is the top class (argmax of the probabilities) and `confidence` its probability.
    """
    _check_metric(metric)
    if metric == "accuracy":
        out = np.mean(np.asarray(y_true) == np.asarray(y_pred), axis=-1)
        return float(out) if np.ndim(out) == 0 else out
    if metric == "ece":
        if confidence is None:
            raise LeukoError("metric_value: metric 'ece' needs the confidence (top probability) of every image")
        n_bins = check_positive_int("metric_value", "n_bins", n_bins)
        confidence = np.asarray(confidence, dtype=float)
        key = _ece_key(bin_index(confidence, n_bins), np.asarray(y_true) == np.asarray(y_pred))
        out = _ece_rows(key, confidence, n_bins)
        return float(out) if np.ndim(out) == 0 else out
    func = balanced_accuracy if metric == "balanced_accuracy" else macro_f1
    return func(y_true, y_pred, n_classes)


def observed_metric(metric: str, y_true: np.ndarray, y_pred: np.ndarray, probs: np.ndarray | None, n_classes: int,
                    n_bins: int = N_BINS) -> float:
    """One run's metric on all its images: ECE by calibration.expected_calibration_error, the others by metric_value."""
    _check_metric(metric)
    if metric == "ece":
        if probs is None:
            raise LeukoError("observed_metric: metric 'ece' needs the class probabilities")
        return expected_calibration_error(probs, y_true, n_bins)
    return float(metric_value(metric, y_true, y_pred, n_classes))


def pair_values(p: Pair, metric: str, n_bins: int = N_BINS) -> tuple[float, float]:
    """(metric of A, metric of B) of one matched pair on all its images."""
    return (observed_metric(metric, p.y_true, p.pred_a, p.probs_a, p.n_classes, n_bins),
            observed_metric(metric, p.y_true, p.pred_b, p.probs_b, p.n_classes, n_bins))


def snap(x: np.ndarray | float) -> np.ndarray | float:
    """Set float noise below TIE to exactly 0."""
    return np.where(np.abs(x) < TIE, 0.0, x) if isinstance(x, np.ndarray) else (0.0 if abs(x) < TIE else float(x))


def _groups(pairs: list[Pair]) -> list[list[int]]:
    """Indices of pairs sharing one image set (same paths), in order of first appearance."""
    groups: dict[tuple, list[int]] = {}
    for i, p in enumerate(pairs):
        groups.setdefault(tuple(p.paths.tolist()), []).append(i)
    return list(groups.values())


@dataclass
class _Calibrated:
    """Per-image inputs of the ECE of one prediction set: key (2 × bin + hit) and confidence (top probability)."""

    key: np.ndarray
    confidence: np.ndarray


def _calibrated(y_true: np.ndarray, probs: np.ndarray | None, n_bins: int) -> _Calibrated:
    """Key and confidence of every image, computed once before resampling (bins and hits as calibration)."""
    if probs is None:
        raise LeukoError("paired_bootstrap: metric 'ece' needs the class probabilities of both runs")
    confidence = probs.max(axis=1)
    return _Calibrated(key=_ece_key(bin_index(confidence, n_bins), probs.argmax(axis=1) == y_true),
                       confidence=confidence)


def bootstrap_metrics(pairs: list[Pair], metrics, n_resamples: int = 9999, seed: int = 0,
                      n_bins: int = N_BINS) -> dict[str, np.ndarray]:
    """The resampled statistic of every metric: per resample, the mean over pairs of metric(A) − metric(B).

    Draw order: rng = default_rng(seed); for each image set in order of first appearance, blocks of at most
    BLOCK_ELEMENTS indices, each `rng.integers(0, n, size=(rows, n))`; pairs on one image set share the draws,
    and so do the metrics (the draws do not depend on which metrics are asked for).
    """
    metrics = [_check_metric(m) for m in metrics]
    check_positive_int("paired_bootstrap", "n_resamples", n_resamples)
    n_bins = check_positive_int("paired_bootstrap", "n_bins", n_bins)
    if not pairs:
        raise LeukoError("paired_bootstrap: no matched pairs")
    calibrated = {i: (_calibrated(p.y_true, p.probs_a, n_bins), _calibrated(p.y_true, p.probs_b, n_bins))
                  for i, p in enumerate(pairs)} if "ece" in metrics else {}
    rng = np.random.default_rng(seed)
    totals = {m: np.zeros(n_resamples) for m in metrics}
    for members in _groups(pairs):
        n = pairs[members[0]].n
        rows = max(1, BLOCK_ELEMENTS // n)
        for start in range(0, n_resamples, rows):
            stop = min(n_resamples, start + rows)
            idx = rng.integers(0, n, size=(stop - start, n))
            for i in members:
                p = pairs[i]
                t = p.y_true[idx] if any(m != "ece" for m in metrics) else None
                for m in metrics:
                    if m == "ece":
                        ca, cb = calibrated[i]
                        totals[m][start:stop] += (_ece_rows(ca.key[idx], ca.confidence[idx], n_bins)
                                                  - _ece_rows(cb.key[idx], cb.confidence[idx], n_bins))
                    else:
                        totals[m][start:stop] += (metric_value(m, t, p.pred_a[idx], p.n_classes)
                                                  - metric_value(m, t, p.pred_b[idx], p.n_classes))
    return {m: snap(totals[m] / len(pairs)) for m in metrics}


def bootstrap_differences(pairs: list[Pair], metric: str, n_resamples: int = 9999, seed: int = 0,
                          n_bins: int = N_BINS) -> np.ndarray:
    """The resampled statistic of one metric (see bootstrap_metrics for the draw order)."""
    return bootstrap_metrics(pairs, [metric], n_resamples, seed, n_bins)[_check_metric(metric)]


def observed_difference(pairs: list[Pair], metric: str, n_bins: int = N_BINS) -> float:
    """Mean over pairs of metric(A) − metric(B) on all images."""
    diffs = [a - b for a, b in (pair_values(p, metric, n_bins) for p in pairs)]
    return snap(float(np.mean(diffs)))


def summarize_bootstrap(boot: np.ndarray, difference: float, metric: str, confidence: float = 0.95,
                        seed: int = 0) -> BootstrapDifference:
    """Percentile interval and the shares of resamples in which A or B is better, from the resampled differences."""
    check_positive_int("paired_bootstrap", "n_resamples", boot.size)
    check_confidence("paired_bootstrap", confidence)
    low, high = np.quantile(boot, [(1 - confidence) / 2, (1 + confidence) / 2])
    above, below = float(np.mean(boot > 0)), float(np.mean(boot < 0))
    a_better, b_better = (above, below) if HIGHER_IS_BETTER[metric] else (below, above)
    return BootstrapDifference(metric=metric, difference=difference,
                               low=float(snap(float(low))), high=float(snap(float(high))),
                               p_a_better=a_better, p_b_better=b_better,
                               confidence=float(confidence), n_resamples=int(boot.size), seed=int(seed))


def paired_bootstrap(pairs: list[Pair], metric: str, n_resamples: int = 9999, seed: int = 0,
                     confidence: float = 0.95, n_bins: int = N_BINS) -> BootstrapDifference:
    """Paired bootstrap over test images (same indices for A and B): difference, percentile interval, P(A better)."""
    check_positive_int("paired_bootstrap", "n_resamples", n_resamples)
    check_confidence("paired_bootstrap", confidence)
    boot = bootstrap_differences(pairs, metric, n_resamples, seed, n_bins)
    return summarize_bootstrap(boot, observed_difference(pairs, metric, n_bins), metric, confidence, seed)


def sign_flip_test(d, n_random: int = RANDOM_SIGN_FLIPS, seed: int = 0) -> float:
    """Two-sided p-value of mean(d) = 0 by flipping signs: all 2^k flips for k <= 16, else n_random random ones."""
    d = np.asarray(d, dtype=float).ravel()
    k = d.size
    if k == 0:
        raise LeukoError("sign_flip_test: no differences")
    if not np.all(np.isfinite(d)):
        raise LeukoError("sign_flip_test: differences must be finite numbers")
    observed = abs(d.mean())
    if k <= EXACT_SIGN_FLIPS:
        bits = (np.arange(2 ** k)[:, None] >> np.arange(k)) & 1
        flipped = np.abs((1 - 2 * bits) @ d) / k
        return float(np.mean(flipped >= observed - TIE))
    rng = np.random.default_rng(seed)
    signs = rng.choice(np.array([-1.0, 1.0]), size=(n_random, k))
    flipped = np.abs(signs @ d) / k
    return float((1 + np.sum(flipped >= observed - TIE)) / (1 + n_random))


def wilcoxon_p(d) -> float | None:
    """Two-sided Wilcoxon signed-rank p-value of the differences; None for fewer than 2 or all zero."""
    d = np.asarray(d, dtype=float).ravel()
    if d.size < 2 or np.all(np.abs(d) < TIE):
        return None
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            p = float(stats.wilcoxon(d).pvalue)
        except ValueError:
            return None
    return p if math.isfinite(p) else None


def mcnemar(y_true, pred_a, pred_b) -> McNemar:
    """Exact McNemar test on one seed: b = A right & B wrong, c = A wrong & B right, p = min(1, 2 P(X <= min(b, c)))."""
    y_true, pred_a, pred_b = (np.asarray(x) for x in (y_true, pred_a, pred_b))
    if not y_true.shape == pred_a.shape == pred_b.shape or y_true.ndim != 1:
        raise LeukoError(f"mcnemar: y_true, pred_a and pred_b must be 1-d of one length, got shapes "
                         f"{y_true.shape}, {pred_a.shape}, {pred_b.shape}")
    right_a, right_b = pred_a == y_true, pred_b == y_true
    b = int(np.sum(right_a & ~right_b))
    c = int(np.sum(~right_a & right_b))
    n = b + c
    if n == 0:
        return McNemar(b=b, c=c, p=1.0)
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1))
    return McNemar(b=b, c=c, p=min(1.0, 2 * tail / 2 ** n))


def direction(low: float, high: float) -> int:
    """+1 when the interval lies above 0, −1 below 0, 0 when it includes 0."""
    return 1 if low > 0 else (-1 if high < 0 else 0)


def p_value(p: float | None) -> str:
    """0.0312 -> '0.031'; below 0.001 -> '< 0.001'; None -> '—'."""
    if p is None:
        return "\u2014"  # the reports' dash (leukoreport.report.number_format.DASH)
    return "< 0.001" if p < 0.001 else f"{p:.3f}"
