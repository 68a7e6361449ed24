"""Compare two runs on the same images: paired bootstrap, sign-flip and Wilcoxon tests, McNemar per seed.

The differences, intervals, Holm-adjusted verdicts and probabilities of improvement come from leukoreport.stats.verdicts
(run A as the variant, run B as the reference), so `compare` and the variants section agree number for number.
Python computes and formats every number; templates/compare.html.j2 only lays them out.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from datetime import datetime
from numbers import Integral, Real
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from leukoreport.stats.calibration import _bin_index, _check_n_bins, expected_calibration_error
from leukoreport.base.errors import LeukoError
from leukoreport.base.atomic_io import write_json
from leukoreport.report.number_format import DASH, estimate, gap_estimate, pct1
from leukoreport.stats.intervals import balanced_accuracy, macro_f1
from leukoreport.stats.metrics import prediction_classes, prob_columns, read_predictions

METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "ece")
METRIC_LABELS = {"accuracy": "accuracy", "balanced_accuracy": "balanced accuracy", "macro_f1": "macro F1",
                 "ece": "ECE"}
HIGHER_IS_BETTER = {"accuracy": True, "balanced_accuracy": True, "macro_f1": True, "ece": False}
N_BINS = 15  # equal-width confidence bins of the ECE, as leukoreport.stats.calibration
INDEX_COLUMNS = ("split_seed", "seed", "dataset", "n", "n_correct", "accuracy", "predictions")
EXACT_SIGN_FLIPS = 16  # enumerate all 2^k sign flips up to this many seeds
RANDOM_SIGN_FLIPS = 20000
BLOCK_ELEMENTS = 1 << 22  # resampled indices drawn per block (bounds memory for large test sets)
TIE = 1e-12  # differences smaller than this count as exactly zero (float noise of equal metrics)
NO_DIFFERENCE = "no difference detected"
SIGNS = {"better": 1, "worse": -1}  # verdict -> direction of the overall sentence


# --------------------------------------------------------------------------- records

@dataclass
class Run:
    """One run on disk: its name, results folder, summary/metrics.csv index and class order."""

    name: str
    results: Path
    index: pd.DataFrame
    classes: list[str]


@dataclass
class Pair:
    """One (split_seed, seed) evaluated by both runs: images sorted by path, labels and predictions as class codes.

    probs_a and probs_b are the class probabilities (n, n_classes) in A's class order; the ECE needs them.
    """

    split_seed: int
    seed: int
    paths: np.ndarray
    y_true: np.ndarray
    pred_a: np.ndarray
    pred_b: np.ndarray
    n_classes: int
    probs_a: np.ndarray | None = None
    probs_b: np.ndarray | None = None

    @property
    def n(self) -> int:
        """Number of test images."""
        return int(self.y_true.size)


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


# --------------------------------------------------------------------------- loading and matching

def _run_name(results: Path) -> str:
    """The results folder's name, or its project folder's name when it is called 'results'."""
    resolved = results.resolve()
    return resolved.parent.name if resolved.name == "results" and resolved.parent.name else resolved.name


def _int_column(df: pd.DataFrame, column: str, where: str) -> pd.Series:
    """Column as int64, else LeukoError naming the file and the column."""
    values = pd.to_numeric(df[column], errors="coerce")
    if values.isna().any() or not np.all(values == np.round(values)):
        raise LeukoError(f"{where}: column '{column}' has missing or non-integer values")
    return values.astype(np.int64)


def _read_index(path: Path) -> pd.DataFrame:
    """summary/metrics.csv with the columns of INDEX_COLUMNS checked and typed."""
    where = path.as_posix()
    try:
        df = pd.read_csv(path, dtype={"dataset": str, "predictions": str})
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise LeukoError(f"{where}: cannot read as CSV: {exc}") from None
    missing = [c for c in INDEX_COLUMNS if c not in df.columns]
    if missing:
        raise LeukoError(f"{where}: missing column(s) {missing}")
    if df.empty:
        raise LeukoError(f"{where}: no rows")
    for column in ("split_seed", "seed", "n", "n_correct"):
        df[column] = _int_column(df, column, where)
    for column in ("dataset", "predictions"):
        if df[column].isna().any():
            raise LeukoError(f"{where}: column '{column}' has empty values")
    dup = df.duplicated(["split_seed", "seed", "dataset"])
    if dup.any():
        row = df[dup].iloc[0]
        raise LeukoError(f"{where}: more than one row for split_seed {row['split_seed']}, seed {row['seed']}, "
                         f"dataset '{row['dataset']}'")
    return df.sort_values(["dataset", "split_seed", "seed"], kind="stable").reset_index(drop=True)


def _header_classes(path: Path) -> list[str]:
    """Class order of one predictions.csv: its prob_ columns."""
    if not path.is_file():
        raise LeukoError(f"{path.as_posix()}: file not found (listed in summary/metrics.csv)")
    return prediction_classes(path)


def load_run(path: str | Path) -> Run:
    """A run from a project folder (uses `path/results`) or a results folder; LeukoError naming the path."""
    path = Path(path)
    if not path.exists():
        raise LeukoError(f"{path.as_posix()}: run folder not found")
    if not path.is_dir():
        raise LeukoError(f"{path.as_posix()}: not a folder (expected a project or results folder)")
    if (path / "results" / "summary" / "metrics.csv").is_file():
        results = path / "results"
    elif (path / "summary" / "metrics.csv").is_file():
        results = path
    else:
        raise LeukoError(f"{path.as_posix()}: no summary/metrics.csv (looked for "
                         f"{(path / 'results/summary/metrics.csv').as_posix()} and "
                         f"{(path / 'summary/metrics.csv').as_posix()})")
    index = _read_index(results / "summary" / "metrics.csv")
    classes = _header_classes(results / index["predictions"].iloc[0])
    return Run(name=_run_name(results), results=results, index=index, classes=classes)


def _keys(run: Run, dataset: str) -> list[tuple[int, int]]:
    """(split_seed, seed) of the run's rows for `dataset`; LeukoError when there are none."""
    rows = run.index[run.index["dataset"] == dataset]
    if rows.empty:
        have = ", ".join(sorted(set(run.index["dataset"])))
        raise LeukoError(f"run {run.name} ({run.results.as_posix()}): no rows for dataset '{dataset}' "
                         f"in summary/metrics.csv (datasets: {have})")
    return [(int(s), int(e)) for s, e in zip(rows["split_seed"], rows["seed"])]


def unmatched(a: Run, b: Run, dataset: str = "test") -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(split_seed, seed) keys on `dataset` found only in A, and only in B."""
    ka, kb = set(_keys(a, dataset)), set(_keys(b, dataset))
    return sorted(ka - kb), sorted(kb - ka)


def _predictions(run: Run, split_seed: int, seed: int, dataset: str) -> pd.DataFrame:
    """One predictions.csv of the run, checked against the index row, sorted by path."""
    idx = run.index
    row = idx[(idx["split_seed"] == split_seed) & (idx["seed"] == seed) & (idx["dataset"] == dataset)].iloc[0]
    path = run.results / row["predictions"]
    found = _header_classes(path)
    if found != run.classes:
        raise LeukoError(f"{path.as_posix()}: classes {found} differ from the run's classes {run.classes}")
    pred = read_predictions(path, run.classes)
    where = path.as_posix()
    if pred["path"].isna().any():
        raise LeukoError(f"{where}: column 'path' has empty values")
    if pred["path"].duplicated().any():
        raise LeukoError(f"{where}: image path listed twice: {pred.loc[pred['path'].duplicated(), 'path'].iloc[0]}")
    n_correct = int((pred["label"] == pred["prediction"]).sum())
    if len(pred) != row["n"] or n_correct != row["n_correct"]:
        raise LeukoError(f"{where}: {n_correct}/{len(pred)} correct but summary/metrics.csv says "
                         f"{row['n_correct']}/{row['n']}")
    return pred.sort_values("path", kind="stable").reset_index(drop=True)


def load_predictions(run: Run, dataset: str) -> dict[tuple[int, int], pd.DataFrame]:
    """Every predictions.csv of the run on `dataset`, keyed by (split_seed, seed), each checked and sorted by path."""
    return {(s, e): _predictions(run, s, e, dataset) for s, e in _keys(run, dataset)}


def frame_codes(run: Run, pred: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels, predictions) as codes in the run's class order and the probabilities (n, K) in that order."""
    code = {c: i for i, c in enumerate(run.classes)}
    return (pred["label"].map(code).to_numpy(np.int64), pred["prediction"].map(code).to_numpy(np.int64),
            pred[prob_columns(run.classes)].to_numpy(float))


def match(a: Run, b: Run, dataset: str = "test", frames_a: dict | None = None,
          frames_b: dict | None = None) -> list[Pair]:
    """Pairs of A and B evaluated with the same (split_seed, seed) on `dataset`, on the same images.

    frames_a / frames_b: the runs' predictions already read by load_predictions (read here when None).
    """
    if set(a.classes) != set(b.classes):
        raise LeukoError(f"runs {a.name} and {b.name} have different classes: {a.name} {a.classes}, "
                         f"{b.name} {b.classes}")
    shared = sorted(set(_keys(a, dataset)) & set(_keys(b, dataset)))
    if not shared:
        raise LeukoError(f"runs {a.name} and {b.name} share no (split_seed, seed) on '{dataset}': "
                         f"{a.name} has {sorted(_keys(a, dataset))}, {b.name} has {sorted(_keys(b, dataset))}")
    what = "test split" if dataset == "test" else f"'{dataset}' images"
    code = {c: i for i, c in enumerate(a.classes)}
    columns = prob_columns(a.classes)
    pairs = []
    for split_seed, seed in shared:
        pa = frames_a[(split_seed, seed)] if frames_a is not None else _predictions(a, split_seed, seed, dataset)
        pb = frames_b[(split_seed, seed)] if frames_b is not None else _predictions(b, split_seed, seed, dataset)
        paths_a, paths_b = set(pa["path"]), set(pb["path"])
        if paths_a != paths_b:
            differ = len(paths_a ^ paths_b)
            example = sorted(paths_a ^ paths_b)[0]
            raise LeukoError(f"runs {a.name} and {b.name} were not evaluated on the same {what}: {differ} image "
                             f"path(s) differ for split_seed {split_seed}, seed {seed} (e.g. {example})")
        labels_differ = pa["label"].to_numpy() != pb["label"].to_numpy()
        if labels_differ.any():
            raise LeukoError(f"runs {a.name} and {b.name} give different labels to {int(labels_differ.sum())} "
                             f"image(s) for split_seed {split_seed}, seed {seed} "
                             f"(e.g. {pa['path'][labels_differ].iloc[0]})")
        pairs.append(Pair(split_seed=split_seed, seed=seed, paths=pa["path"].to_numpy(dtype=str),
                          y_true=pa["label"].map(code).to_numpy(np.int64),
                          pred_a=pa["prediction"].map(code).to_numpy(np.int64),
                          pred_b=pb["prediction"].map(code).to_numpy(np.int64),
                          n_classes=len(a.classes), probs_a=pa[columns].to_numpy(float),
                          probs_b=pb[columns].to_numpy(float)))
    return pairs


# --------------------------------------------------------------------------- statistics

def _check_metric(metric: str) -> str:
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
        n_bins = _check_n_bins("metric_value", n_bins)
        confidence = np.asarray(confidence, dtype=float)
        key = _ece_key(_bin_index(confidence, n_bins), np.asarray(y_true) == np.asarray(y_pred))
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


def _snap(x: np.ndarray | float) -> np.ndarray | float:
    """Set float noise below TIE to exactly 0."""
    return np.where(np.abs(x) < TIE, 0.0, x) if isinstance(x, np.ndarray) else (0.0 if abs(x) < TIE else float(x))


def _check_settings(where: str, n_resamples: int, confidence: float) -> None:
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, Integral) or n_resamples < 1:
        raise LeukoError(f"{where}: n_resamples = {n_resamples!r} is not a positive integer")
    if isinstance(confidence, bool) or not isinstance(confidence, Real) or not 0 < confidence < 1:
        raise LeukoError(f"{where}: confidence = {confidence!r} is not strictly between 0 and 1")


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
    return _Calibrated(key=_ece_key(_bin_index(confidence, n_bins), probs.argmax(axis=1) == y_true),
                       confidence=confidence)


def bootstrap_metrics(pairs: list[Pair], metrics, n_resamples: int = 9999, seed: int = 0,
                      n_bins: int = N_BINS) -> dict[str, np.ndarray]:
    """The resampled statistic of every metric: per resample, the mean over pairs of metric(A) − metric(B).

    Draw order: rng = default_rng(seed); for each image set in order of first appearance, blocks of at most
    BLOCK_ELEMENTS indices, each `rng.integers(0, n, size=(rows, n))`; pairs on one image set share the draws,
    and so do the metrics (the draws do not depend on which metrics are asked for).
    """
    metrics = [_check_metric(m) for m in metrics]
    _check_settings("paired_bootstrap", n_resamples, 0.5)
    n_bins = _check_n_bins("paired_bootstrap", n_bins)
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
    return {m: _snap(totals[m] / len(pairs)) for m in metrics}


def bootstrap_differences(pairs: list[Pair], metric: str, n_resamples: int = 9999, seed: int = 0,
                          n_bins: int = N_BINS) -> np.ndarray:
    """The resampled statistic of one metric (see bootstrap_metrics for the draw order)."""
    return bootstrap_metrics(pairs, [metric], n_resamples, seed, n_bins)[_check_metric(metric)]


def observed_difference(pairs: list[Pair], metric: str, n_bins: int = N_BINS) -> float:
    """Mean over pairs of metric(A) − metric(B) on all images."""
    diffs = [a - b for a, b in (pair_values(p, metric, n_bins) for p in pairs)]
    return _snap(float(np.mean(diffs)))


def summarize_bootstrap(boot: np.ndarray, difference: float, metric: str, confidence: float = 0.95,
                        seed: int = 0) -> BootstrapDifference:
    """Percentile interval and the shares of resamples in which A or B is better, from the resampled differences."""
    _check_settings("paired_bootstrap", boot.size, confidence)
    low, high = np.quantile(boot, [(1 - confidence) / 2, (1 + confidence) / 2])
    above, below = float(np.mean(boot > 0)), float(np.mean(boot < 0))
    a_better, b_better = (above, below) if HIGHER_IS_BETTER[metric] else (below, above)
    return BootstrapDifference(metric=metric, difference=difference,
                               low=float(_snap(float(low))), high=float(_snap(float(high))),
                               p_a_better=a_better, p_b_better=b_better,
                               confidence=float(confidence), n_resamples=int(boot.size), seed=int(seed))


def paired_bootstrap(pairs: list[Pair], metric: str, n_resamples: int = 9999, seed: int = 0,
                     confidence: float = 0.95, n_bins: int = N_BINS) -> BootstrapDifference:
    """Paired bootstrap over test images (same indices for A and B): difference, percentile interval, P(A better)."""
    _check_settings("paired_bootstrap", n_resamples, confidence)
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


# --------------------------------------------------------------------------- words

def _label(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric)


def direction(low: float, high: float) -> int:
    """+1 when the interval lies above 0, −1 below 0, 0 when it includes 0."""
    return 1 if low > 0 else (-1 if high < 0 else 0)


def conclusion(metric: str, diff: float, low: float, high: float, name_a: str, name_b: str,
               outcome: str | None = None) -> str:
    """One sentence: 'No difference detected in …' or '{A} is better/worse than {B} …' (ECE: lower is better).

    `outcome` is the verdict ('better', 'worse', 'no difference detected'); without it the interval decides.
    """
    text = f"{name_a} \u2212 {name_b} = {gap_estimate(diff, low, high)}"
    if outcome is None:
        sign = direction(low, high) * (1 if HIGHER_IS_BETTER.get(metric, True) else -1)
        outcome = {1: "better", -1: "worse"}.get(sign, NO_DIFFERENCE)
    if outcome not in ("better", "worse"):
        return f"No difference detected in {_label(metric)}: {text}."
    return f"{name_a} is {outcome} than {name_b} in {_label(metric)}: {text}."


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def verdict(directions: dict[str, int], name_a: str, name_b: str, dataset: str = "test") -> str:
    """One sentence over all metrics from the direction (+1, 0, −1) of each metric's interval."""
    better = [_label(m) for m, s in directions.items() if s > 0]
    worse = [_label(m) for m, s in directions.items() if s < 0]
    same = [_label(m) for m, s in directions.items() if s == 0]
    where = "on the test split" if dataset == "test" else f"on '{dataset}'"
    if not better and not worse:
        return f"Overall, no difference between {name_a} and {name_b} was detected {where} in any metric."
    if better and worse:
        return (f"Overall, the result is mixed {where}: {name_a} is better than {name_b} in {_join(better)} "
                f"but worse in {_join(worse)}.")
    word, which = ("better", better) if better else ("worse", worse)
    rest = f" (no difference detected in {_join(same)})" if same else ""
    return f"Overall, {name_a} is {word} than {name_b} {where} in {_join(which)}{rest}."


# --------------------------------------------------------------------------- the comparison

def _display_names(a: Run, b: Run) -> tuple[str, str]:
    """The runs' names, with ' (A)' and ' (B)' appended when they are equal."""
    return (a.name, b.name) if a.name != b.name else (f"{a.name} (A)", f"{b.name} (B)")


def _dataset_result(a: Run, b: Run, name_a: str, name_b: str, dataset: str, rows: dict, result: dict) -> dict:
    """Per-seed values, McNemar, across-seed tests and the verdicts' numbers of one dataset."""
    pairs = match(a, b, dataset)
    only_a, only_b = unmatched(a, b, dataset)
    metrics_used = result["metrics"]
    n_bins = result["n_bins"]
    per_seed = []
    for p in pairs:
        values = {}
        for m in metrics_used:
            va, vb = pair_values(p, m, n_bins)
            values[m] = {"a": va, "b": vb, "difference": _snap(float(va - vb))}
        per_seed.append({"split_seed": p.split_seed, "seed": p.seed, "n": p.n, "metrics": values,
                         "mcnemar": mcnemar(p.y_true, p.pred_a, p.pred_b).to_dict()})
    metrics = {}
    for m in metrics_used:
        r = rows[(dataset, m)]
        d = [row["metrics"][m]["difference"] for row in per_seed]
        metrics[m] = {
            "label": _label(m),
            "higher_is_better": HIGHER_IS_BETTER[m],
            "a_mean": float(np.mean([row["metrics"][m]["a"] for row in per_seed])),
            "b_mean": float(np.mean([row["metrics"][m]["b"] for row in per_seed])),
            "difference": r["difference"],
            "low": r["low"],
            "high": r["high"],
            "direction": direction(r["low"], r["high"]),
            "p_a_better": r["p_variant_better"],
            "p_b_better": r["p_reference_better"],
            "p": r["p"],
            "p_holm": r["p_holm"],
            "verdict": r["verdict"],
            "p_improvement": r["p_improvement"],
            "pi_low": r["pi_low"],
            "pi_high": r["pi_high"],
            "per_seed_differences": d,
            "sign_flip_p": sign_flip_test(d, seed=result["seed"]),
            "sign_flip_method": "exact" if len(d) <= EXACT_SIGN_FLIPS else f"{RANDOM_SIGN_FLIPS} random flips",
            "wilcoxon_p": wilcoxon_p(d),
            "conclusion": conclusion(m, r["difference"], r["low"], r["high"], name_a, name_b, r["verdict"]),
        }
    return {
        "dataset": dataset,
        "seeds": {"matched": [{"split_seed": p.split_seed, "seed": p.seed, "n": p.n} for p in pairs],
                  "only_a": [{"split_seed": s, "seed": e} for s, e in only_a],
                  "only_b": [{"split_seed": s, "seed": e} for s, e in only_b]},
        "verdict": verdict({m: SIGNS.get(metrics[m]["verdict"], 0) for m in metrics_used}, name_a, name_b,
                           dataset),
        "notes": _notes(metrics, only_a, only_b, name_a, name_b, len(pairs), result),
        "metrics": metrics,
        "per_seed": per_seed,
    }


def compare_runs(a: Run | str | Path, b: Run | str | Path, n_resamples: int = 9999, seed: int = 0,
                 confidence: float = 0.95, dataset: str | None = None, n_bins: int = N_BINS) -> dict:
    """Everything compare.json holds (plain JSON types) for every dataset both runs evaluated, or only `dataset`.

    result["datasets"][name] holds each dataset's runs, seeds, per-metric tests and per-seed values; the same
    fields of the first dataset (the test split when both have it) are repeated at the top level.
    """
    from leukoreport.stats.verdicts import compare_variants  # lazy: verdicts imports this module

    _check_settings("compare_runs", n_resamples, confidence)
    n_bins = _check_n_bins("compare_runs", n_bins)
    a = a if isinstance(a, Run) else load_run(a)
    b = b if isinstance(b, Run) else load_run(b)
    name_a, name_b = _display_names(a, b)
    found = compare_variants({name_b: b, name_a: a}, reference=name_b,
                             datasets=None if dataset is None else [dataset], n_resamples=n_resamples, seed=seed,
                             confidence=confidence, n_bins=n_bins)
    if not found["datasets"]:
        reasons = "; ".join(f"'{s['dataset']}': {s['reason']}" for s in found["skipped"])
        raise LeukoError(f"runs {a.name} and {b.name} have no dataset in common to compare ({reasons})")
    rows = {(r["dataset"], r["metric"]): r for r in found["comparisons"]}
    datasets = {d: _dataset_result(a, b, name_a, name_b, d, rows, found) for d in found["datasets"]}
    first = datasets[found["datasets"][0]]
    return {
        "dataset": first["dataset"],
        "confidence": float(confidence),
        "n_resamples": int(n_resamples),
        "seed": int(seed),
        "n_bins": int(n_bins),
        "interval_method": "paired bootstrap over images, percentile; probability of improvement: stratified "
                           "bootstrap over the runs of each (strata: split seeds), percentile",
        "adjustment": found["adjustment"],
        "alpha": found["alpha"],
        "n_comparisons": found["n_comparisons"],
        "p_method": found["p_method"],
        "runs": {"a": {"name": name_a, "path": a.results.resolve().as_posix(), "classes": list(a.classes)},
                 "b": {"name": name_b, "path": b.results.resolve().as_posix(), "classes": list(b.classes)}},
        "seeds": first["seeds"],
        "verdict": first["verdict"],
        "notes": first["notes"],
        "metrics": first["metrics"],
        "per_seed": first["per_seed"],
        "datasets": datasets,
        "skipped": found["skipped"],
        "general_notes": found["notes"],
    }


def _keys_text(keys: list[tuple[int, int]]) -> str:
    return ", ".join(f"split {s} seed {e}" for s, e in keys)


def _notes(metrics: dict, only_a: list, only_b: list, name_a: str, name_b: str, k: int, result: dict) -> list[str]:
    """Caveats for the reader: unmatched seeds, too few seeds for the across-seed tests, seeds that disagree."""
    notes = []
    if only_a:
        notes.append(f"Only {name_a} has {_keys_text(only_a)}; not compared.")
    if only_b:
        notes.append(f"Only {name_b} has {_keys_text(only_b)}; not compared.")
    if k <= 5:
        smallest = 2.0 ** (1 - k)
        notes.append(f"With {k} matched seed{'s' if k != 1 else ''} the smallest possible sign-flip p-value is "
                     f"{smallest:g}, so the across-seed tests cannot reach p < 0.05; the bootstrap interval covers "
                     f"only the sampling of test images, not the variation between training runs.")
    for m, r in metrics.items():
        signs = {int(np.sign(x)) for x in r["per_seed_differences"]}
        if r["direction"] != 0 and -r["direction"] in signs:
            notes.append(f"In {r['label']} the per-seed differences do not all agree with the interval's direction.")
        if r["direction"] != 0 and r["verdict"] not in SIGNS:
            notes.append(f"In {r['label']} the {100 * result['confidence']:g}% interval excludes 0 but the "
                         f"Holm-adjusted p-value ({p_value(r['p_holm'])}, over {result['n_comparisons']} "
                         f"comparisons) is not below {result['alpha']:g}, so no difference is declared.")
    return notes


# --------------------------------------------------------------------------- formatting and writing

def p_value(p: float | None) -> str:
    """0.0312 -> '0.031'; below 0.001 -> '< 0.001'; None -> '—'."""
    if p is None:
        return DASH
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _pp(x: float) -> str:
    """A signed difference in percentage points without the unit: −0.135 -> '−13.5'."""
    return f"{100 * float(x):+.1f}".replace("-", "\u2212")


def _dataset_title(dataset: str) -> str:
    return "Test split" if dataset == "test" else f"External set \u201c{dataset}\u201d"


def _seed_keys(rows: list[dict]) -> str:
    return ", ".join(f"{m['split_seed']}/{m['seed']}" for m in rows) or DASH


def _dataset_view(d: dict) -> dict:
    """One dataset's part of the template context."""
    metrics = []
    for m, r in d["metrics"].items():
        gap = gap_estimate(r["difference"], r["low"], r["high"])
        improvement = estimate(r["p_improvement"], r["pi_low"], r["pi_high"], "num")
        metrics.append({
            "label": r["label"],
            "lower_better": not r["higher_is_better"],
            "a": pct1(r["a_mean"]),
            "b": pct1(r["b_mean"]),
            "difference": gap.value,
            "difference_interval": gap.interval,
            "css": {"better": "better", "worse": "worse"}.get(r["verdict"], "none"),
            "p": p_value(r["p"]),
            "p_holm": p_value(r["p_holm"]),
            "verdict": r["verdict"],
            "improvement": improvement.value,
            "improvement_interval": improvement.interval,
            "sign_flip_p": p_value(r["sign_flip_p"]),
            "wilcoxon_p": p_value(r["wilcoxon_p"]),
            "conclusion": r["conclusion"],
        })
    seeds = []
    for row in d["per_seed"]:
        cells = []
        for key in d["metrics"]:
            v = row["metrics"][key]
            cells.append({"a": pct1(v["a"]), "b": pct1(v["b"]), "difference": _pp(v["difference"])})
        mc = row["mcnemar"]
        seeds.append({"split_seed": row["split_seed"], "seed": row["seed"], "n": row["n"], "cells": cells,
                      "b": mc["b"], "c": mc["c"], "p": p_value(mc["p"])})
    matched = d["seeds"]["matched"]
    return {
        "name": d["dataset"],
        "title": _dataset_title(d["dataset"]),
        "verdict": d["verdict"],
        "notes": d["notes"],
        "metrics": metrics,
        "metric_labels": [r["label"] for r in d["metrics"].values()],
        "seeds": seeds,
        "matched": _seed_keys(matched),
        "n_matched": len(matched),
        "n_images": " or ".join(str(n) for n in sorted({m["n"] for m in matched})),
        "only_a": _seed_keys(d["seeds"]["only_a"]),
        "only_b": _seed_keys(d["seeds"]["only_b"]),
    }


def view(result: dict) -> dict:
    """The template context: every number of `result` formatted as text, one block per dataset."""
    runs = result["runs"]
    datasets = result["datasets"]
    return {
        "title": f"Comparison: {runs['a']['name']} vs {runs['b']['name']}",
        "date": datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z").strip(),
        "confidence": f"{100 * result['confidence']:g}%",
        "n_resamples": f"{result['n_resamples']:,}".replace(",", "\u2009"),
        "seed": result["seed"],
        "n_bins": result["n_bins"],
        "alpha": f"{result['alpha']:g}",
        "n_comparisons": result["n_comparisons"],
        "a": runs["a"],
        "b": runs["b"],
        "classes": ", ".join(runs["a"]["classes"]),
        "dataset_names": ", ".join(datasets),
        "datasets": [_dataset_view(d) for d in datasets.values()],
        "skipped": [f"{_dataset_title(s['dataset'])}: {s['reason']}" for s in result["skipped"]],
        "general_notes": result["general_notes"],
    }


def write_comparison(result: dict, out_dir: str | Path, templates_dir: str | Path) -> dict[str, Path]:
    """Write compare.json, compare.html and compare.pdf under out_dir, each atomically; returns their paths."""
    from leukoreport.report.build import render_html, write_html, write_pdf  # lazy: heavy imports

    out_dir = Path(out_dir)
    templates_dir = Path(templates_dir)
    if not (templates_dir / "compare.html.j2").is_file():
        raise LeukoError(f"{templates_dir.as_posix()}: no compare.html.j2 (--templates must name the templates folder)")
    if out_dir.exists() and not out_dir.is_dir():
        raise LeukoError(f"{out_dir.as_posix()}: exists and is not a folder")
    paths = {"json": out_dir / "compare.json", "html": out_dir / "compare.html", "pdf": out_dir / "compare.pdf"}
    html = render_html(view(result), templates_dir, "compare")
    write_json(result, paths["json"])
    write_html(html, paths["html"])
    write_pdf(paths["html"], paths["pdf"])
    return paths
