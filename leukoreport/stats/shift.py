"""Distribution shift of an image set from the training images, measured on pooled CNN embeddings.

Two views: a domain classifier (cross-validated ROC AUC of train vs set, Newcombe score interval) and a
per-image deep nearest-neighbour distance (Sun et al., ICML 2022) expressed as a percentile of
the test split's own distances, with accuracy per percentile band and risk-coverage curves.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from leukoreport.base.errors import LeukoError
from leukoreport.base.validation import check_confidence, check_int
from leukoreport.stats.intervals import wilson

__all__ = ["BANDS", "BAND_LABELS", "DOMAIN_METHOD", "KNN_CHUNK", "MIN_DOMAIN", "accuracy_at_coverage",
           "accuracy_by_band", "aurc", "band_index", "beyond_reference", "calibrate_auc", "check_risk_table",
           "delong_interval", "delong_variance", "domain_auc", "knn_distance", "newcombe_interval", "newcombe_variance",
           "percentile_of", "risk_coverage", "score_interval"]

DOMAIN_METHOD = ("logistic regression on the standardised embeddings' first principal components, stratified "
                 "k-fold, AUC over held-out pairs within each fold (Newcombe score interval), calibrated so that "
                 "the mean AUC of side-permuted data maps to 0.5")
MIN_DOMAIN = 4  # images needed on each side (2 folds of 2)
KNN_CHUNK = 2048

# Percentile bands of a kNN distance against the test split's own distances. A percentile p is in
# band (lo, hi], except the first band, which is [0, 50]. "beyond every test image" holds the images
# whose distance is strictly greater than every reference distance (p == 100 and score > max);
# "99–100th" holds the rest of (99, 100], including scores tied with the reference maximum.
BANDS = [(0, 50), (50, 90), (90, 99), (99, 100), (100, math.inf)]
BAND_LABELS = ["≤ 50th", "50–90th", "90–99th", "99–100th", "beyond every test image"]


# ---------------------------------------------------------------- input checks

def _array(where: str, name: str, values, ndim: int) -> np.ndarray:
    """`values` as a finite float64 array of `ndim` dimensions, else LeukoError."""
    arr = np.asarray(values)
    if arr.ndim != ndim:
        shape = "a 2-d array (images x features)" if ndim == 2 else "1-d"
        raise LeukoError(f"{where}: {name} must be {shape}, got shape {arr.shape}")
    if arr.dtype.kind not in "fiub":
        raise LeukoError(f"{where}: {name} must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    if not np.all(np.isfinite(arr)):
        raise LeukoError(f"{where}: {name} contains NaN or infinite values")
    return arr


def _matrix(where: str, name: str, values) -> np.ndarray:
    """`values` as a finite 2-d float64 array, else LeukoError."""
    return _array(where, name, values, 2)


def _vector(where: str, name: str, values) -> np.ndarray:
    """`values` as a finite 1-d float64 array, else LeukoError."""
    return _array(where, name, values, 1)


def _flags(where: str, name: str, values, n: int) -> np.ndarray:
    """`values` as a 1-d bool array of length n (booleans or 0/1), else LeukoError."""
    arr = np.asarray(values)
    if arr.ndim != 1 or arr.size != n:
        raise LeukoError(f"{where}: {name} must be 1-d of length {n}, got shape {arr.shape}")
    if arr.dtype.kind != "b":
        if arr.dtype.kind not in "fiu" or not np.all(np.isin(arr, (0, 1))):
            raise LeukoError(f"{where}: {name} must hold booleans or 0/1")
        arr = arr.astype(bool)
    return arr


# ---------------------------------------------------------------- DeLong

def _midranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of `x` with ties given the mean of their ranks (O(n log n))."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    ends = np.r_[starts[1:], xs.size]  # exclusive
    mid = (starts + ends + 1) / 2.0  # mean of ranks starts+1 .. ends
    ranks = np.empty(x.size, dtype=np.float64)
    ranks[order] = np.repeat(mid, ends - starts)
    return ranks


def _delong_parts(where: str, scores, labels) -> tuple[float, np.ndarray, np.ndarray]:
    """(AUC, V10 over positives, V01 over negatives): DeLong's structural components via midranks."""
    s = _vector(where, "scores", scores)
    lab = np.asarray(labels)
    if lab.shape != s.shape:
        raise LeukoError(f"{where}: labels have shape {lab.shape} but scores have shape {s.shape}")
    if not np.all(np.isin(lab, (0, 1))):
        raise LeukoError(f"{where}: labels must be 0 or 1")
    pos = lab.astype(bool)
    m, n = int(pos.sum()), int((~pos).sum())
    if m < 2 or n < 2:
        raise LeukoError(f"{where}: needs at least 2 scores of each label, got {n} of label 0 "
                         f"and {m} of label 1")
    x, y = s[pos], s[~pos]
    tz = _midranks(s)
    tx, ty = _midranks(x), _midranks(y)
    v10 = (tz[pos] - tx) / n  # per positive: share of negatives below it (ties count half)
    v01 = 1.0 - (tz[~pos] - ty) / m  # per negative: share of positives above it
    auc = float(v10.mean())
    return auc, v10, v01


def delong_variance(scores, labels) -> tuple[float, float]:
    """(AUC, DeLong variance of the AUC) for scores where label 1 is the positive class."""
    auc, v10, v01 = _delong_parts("delong_variance", scores, labels)
    var = float(np.var(v10, ddof=1) / v10.size + np.var(v01, ddof=1) / v01.size)
    return auc, var


def delong_interval(scores, labels, confidence: float = 0.95) -> tuple[float, float, float]:
    """(AUC, low, high): normal interval from DeLong's variance, clipped to [0, 1]."""
    confidence = check_confidence("delong_interval", confidence)
    auc, var = delong_variance(scores, labels)
    half = float(stats.norm.ppf(0.5 + confidence / 2)) * math.sqrt(max(var, 0.0))
    return auc, max(0.0, auc - half), min(1.0, auc + half)


# ---------------------------------------------------------------- Newcombe score interval

def newcombe_variance(theta: float, m: int, n: int) -> float:
    """Hanley-McNeil variance of an AUC `theta` from m positives and n negatives with N* = (m + n)/2 - 1
    (Newcombe 2006, Stat Med 25:559, part 2, method 5)."""
    if m < 1 or n < 1:
        raise LeukoError(f"newcombe_variance: needs at least 1 score of each label, got m = {m}, n = {n}")
    star = (m + n) / 2.0 - 1.0
    return theta * (1.0 - theta) * (1.0 + (star - 1.0) * ((1.0 - theta) / (2.0 - theta) + theta / (1.0 + theta))) \
        / (m * n)


def score_interval(estimate: float, variance, confidence: float = 0.95) -> tuple[float, float]:
    """Every theta in [0, 1] with (estimate - theta)^2 <= z^2 variance(theta), its ends found by brentq; the
    interval keeps its width at 0 and 1 because the variance is taken at theta, not at the estimate."""
    from scipy.optimize import brentq

    confidence = check_confidence("score_interval", confidence)
    if not 0.0 <= estimate <= 1.0:
        raise LeukoError(f"score_interval: estimate {estimate!r} is not in [0, 1]")
    z2 = float(stats.norm.ppf(0.5 + confidence / 2)) ** 2

    def f(theta: float) -> float:
        return (estimate - theta) ** 2 - z2 * variance(theta)

    eps = 1e-12
    inside = min(max(estimate, eps), 1.0 - eps)  # f < 0 here, also when the estimate is 0 or 1
    if f(inside) >= 0:  # no variance at all (cannot happen with m, n >= 1): the point itself
        return estimate, estimate
    low = 0.0 if f(0.0) <= 0 else float(brentq(f, 0.0, inside, xtol=1e-12))
    high = 1.0 if f(1.0) <= 0 else float(brentq(f, inside, 1.0, xtol=1e-12))
    return low, high


def newcombe_interval(auc: float, m: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """(low, high) of an AUC from m positives and n negatives: Newcombe's (2006) method 5 score interval."""
    return score_interval(auc, lambda t: newcombe_variance(t, m, n), confidence)


# ---------------------------------------------------------------- domain classifier

def _subsample(x: np.ndarray, limit: int | None, rng: np.random.Generator) -> np.ndarray:
    """At most `limit` rows of `x`, drawn without replacement (kept in their original order)."""
    if limit is None or x.shape[0] <= limit:
        return x
    return x[np.sort(rng.choice(x.shape[0], size=limit, replace=False))]


def _fold_splits(y: np.ndarray, strata: np.ndarray | None, n_splits: int, seed: int) -> list:
    """Stratified folds by side and stratum (falling back to side alone when a fold lacks 2 rows of a side)."""
    import warnings

    from sklearn.model_selection import StratifiedKFold

    splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    if strata is not None:
        keys = np.array([f"{side}|{s}" for side, s in zip(y, strata)])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # a stratum smaller than n_splits
            splits = list(splitter.split(y, keys))
        if all(min(y[h].sum(), (1 - y[h]).sum()) >= 2 for _, h in splits):
            return splits
    return list(splitter.split(y, y))


def _within_fold_auc(x: np.ndarray, y: np.ndarray, splits: list) -> tuple[float, list[float], list[tuple[int, int]]]:
    """AUC over held-out pairs of the same fold (weighted by pairs), the folds' AUCs and their (m, n) held-out sizes."""
    from sklearn.linear_model import LogisticRegression

    aucs, sizes = [], []
    for fit_idx, held_idx in splits:
        model = LogisticRegression(C=1.0, max_iter=2000).fit(x[fit_idx], y[fit_idx])
        held_y = y[held_idx]
        aucs.append(delong_variance(model.decision_function(x[held_idx]), held_y)[0])
        sizes.append((int(held_y.sum()), int(held_y.size - held_y.sum())))
    w = np.array([m * n for m, n in sizes], dtype=float)
    w /= w.sum()
    return float(w @ np.array(aucs)), [float(v) for v in aucs], sizes


def _folds_variance(sizes: list[tuple[int, int]]):
    """theta -> variance of the pair-weighted mean of the folds' AUCs, each with Newcombe's variance at theta."""
    w = np.array([m * n for m, n in sizes], dtype=float)
    w /= w.sum()
    return lambda theta: float(sum(wi ** 2 * newcombe_variance(theta, m, n) for wi, (m, n) in zip(w, sizes)))


def _permuted(y: np.ndarray, strata: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    """The side labels shuffled within each stratum (all rows together without strata)."""
    out = y.copy()
    groups = [np.arange(y.size)] if strata is None else [np.flatnonzero(strata == s) for s in np.unique(strata)]
    for idx in groups:
        out[idx] = y[rng.permutation(idx)]
    return out


def calibrate_auc(auc: float, null: float) -> float:
    """Map an AUC so that the permutation null goes to 0.5 while 0 and 1 stay put (piecewise linear)."""
    if auc >= null:
        return 1.0 if null >= 1.0 else 0.5 + 0.5 * (auc - null) / (1.0 - null)
    return 0.0 if null <= 0.0 else 0.5 * auc / null


def domain_auc(train: np.ndarray, other: np.ndarray, folds: int = 5, seed: int = 0,
               confidence: float = 0.95, max_per_side: int | None = 2000,
               train_strata=None, other_strata=None, permutations: int = 20, components: int = 32) -> dict:
    """Cross-validated ROC AUC of a logistic regression telling `train` rows (0) from `other` rows (1),
    calibrated against a permutation null so that indistinguishable sets get 0.5.

    Rows are standardised and projected on their first `components` principal components (fitted on both
    sides, without the side labels). The AUC counts pairs of held-out rows of the same fold (pooling folds
    biases it low: Parker et al. 2007, Airola et al. 2011); folds are stratified by side and stratum (the class).
    Images of one patient or smear cluster in the embedding, so a held-out image is scored like its fitted
    twins on the other side: even within folds a cross-validated AUC falls below 0.5 when nothing differs
    (measured here: 0.29-0.34 for two halves of the test split). ``auc_raw`` is that AUC, ``null_auc`` its mean
    over `permutations` shuffles of the sides within strata, and ``auc`` = calibrate_auc(auc_raw, null_auc),
    with the interval ends mapped the same way. The raw interval is Newcombe's (2006) method 5 score interval: the
    theta with (raw - theta)^2 <= z^2 V(theta), V the pair-weighted sum of each fold's Hanley-McNeil variance
    with N* = (m + n)/2 - 1; unlike DeLong's (zero variance at an AUC of 1) it keeps its width at 0 and 1.
    ``p_permutation`` is (1 + #null >= raw) / (1 + permutations). An AUC clearly below 0.5 means that the set's
    images have near twins among the training images (duplicates, the same patients or smears): see the leakage
    audit.
    """
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    where = "domain_auc"
    a = _matrix(where, "train", train)
    b = _matrix(where, "other", other)
    if a.shape[0] < MIN_DOMAIN or b.shape[0] < MIN_DOMAIN:
        raise LeukoError(f"{where}: the domain classifier needs at least {MIN_DOMAIN} images on each side, "
                         f"got {a.shape[0]} training and {b.shape[0]} in the set")
    if a.shape[1] != b.shape[1]:
        raise LeukoError(f"{where}: train has {a.shape[1]} features but other has {b.shape[1]}")
    folds = check_int(where, "folds", folds, 2)
    permutations = check_int(where, "permutations", permutations, 1)
    confidence = check_confidence(where, confidence)
    if max_per_side is not None:
        max_per_side = check_int(where, "max_per_side", max_per_side, 2)
    rng = np.random.default_rng(seed)
    sa = np.arange(a.shape[0]) if train_strata is None else np.asarray(train_strata)
    sb = np.arange(b.shape[0]) if other_strata is None else np.asarray(other_strata)
    if sa.shape[0] != a.shape[0] or sb.shape[0] != b.shape[0]:
        raise LeukoError(f"{where}: strata must have one entry per row")
    ia = _subsample(np.arange(a.shape[0])[:, None], max_per_side, rng)[:, 0]
    ib = _subsample(np.arange(b.shape[0])[:, None], max_per_side, rng)[:, 0]
    a, b = a[ia], b[ib]
    x = StandardScaler().fit_transform(np.vstack([a, b]))
    n_comp = max(1, min(components, x.shape[0] - 1, x.shape[1]))
    x = PCA(n_components=n_comp, random_state=seed).fit_transform(x)
    y = np.r_[np.zeros(a.shape[0], dtype=np.int64), np.ones(b.shape[0], dtype=np.int64)]
    strata = None if train_strata is None or other_strata is None else np.r_[sa[ia].astype(str), sb[ib].astype(str)]
    n_splits = min(folds, a.shape[0] // 2, b.shape[0] // 2)
    raw, fold_aucs, sizes = _within_fold_auc(x, y, _fold_splits(y, strata, n_splits, seed))
    null = []
    for i in range(permutations):
        yp = _permuted(y, strata, rng)
        null.append(_within_fold_auc(x, yp, _fold_splits(yp, strata, n_splits, seed + 1 + i))[0])
    null_mean = float(np.mean(null))
    low, high = score_interval(raw, _folds_variance(sizes), confidence)
    return {"auc": calibrate_auc(raw, null_mean), "low": calibrate_auc(low, null_mean),
            "high": calibrate_auc(high, null_mean), "auc_raw": raw, "raw_low": low, "raw_high": high,
            "null_auc": null_mean, "null_sd": float(np.std(null)), "permutations": permutations,
            "p_permutation": (1 + sum(v >= raw for v in null)) / (1 + permutations),
            "components": int(n_comp), "n_train": int(a.shape[0]), "n_set": int(b.shape[0]),
            "folds": int(n_splits), "method": DOMAIN_METHOD, "fold_aucs": fold_aucs,
            "fold_sizes": [list(v) for v in sizes]}


# ---------------------------------------------------------------- kNN distance

def _normalise_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm; all-zero rows stay zero."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def knn_distance(train: np.ndarray, query: np.ndarray, k: int = 10,
                 exclude_self: bool = False) -> np.ndarray:
    """Euclidean distance of each L2-normalised query row to its k-th nearest normalised training row.
    k is capped at the training rows available; exclude_self (query is train) skips row i's own match."""
    where = "knn_distance"
    t = _matrix(where, "train", train)
    q = _matrix(where, "query", query)
    k = check_int(where, "k", k, 1)
    if t.shape[0] == 0:
        raise LeukoError(f"{where}: train has no rows")
    if t.shape[1] != q.shape[1]:
        raise LeukoError(f"{where}: train has {t.shape[1]} features but query has {q.shape[1]}")
    if exclude_self:
        if q.shape != t.shape:
            raise LeukoError(f"{where}: exclude_self needs query to be the training set itself, "
                             f"got shapes {q.shape} and {t.shape}")
        if t.shape[0] < 2:
            raise LeukoError(f"{where}: exclude_self needs at least 2 training rows")
    available = t.shape[0] - (1 if exclude_self else 0)
    kth = min(k, available) - 1
    t, q = _normalise_rows(t), _normalise_rows(q)
    t_sq = np.einsum("ij,ij->i", t, t)
    out = np.empty(q.shape[0], dtype=np.float64)
    for start in range(0, q.shape[0], KNN_CHUNK):
        block = q[start:start + KNN_CHUNK]
        d2 = np.einsum("ij,ij->i", block, block)[:, None] + t_sq[None, :] - 2.0 * (block @ t.T)
        np.maximum(d2, 0.0, out=d2)
        if exclude_self:
            rows = np.arange(block.shape[0])
            d2[rows, start + rows] = np.inf
        out[start:start + block.shape[0]] = np.partition(d2, kth, axis=1)[:, kth]
    return np.sqrt(out)


def percentile_of(scores: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Each score as the percentage (0–100) of reference scores <= it."""
    s = _vector("percentile_of", "scores", scores)
    ref = _vector("percentile_of", "reference", reference)
    if ref.size == 0:
        raise LeukoError("percentile_of: reference is empty")
    return 100.0 * np.searchsorted(np.sort(ref), s, side="right") / ref.size


def beyond_reference(scores: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """True where a score is strictly greater than every reference score."""
    s = _vector("beyond_reference", "scores", scores)
    ref = _vector("beyond_reference", "reference", reference)
    if ref.size == 0:
        raise LeukoError("beyond_reference: reference is empty")
    return s > ref.max()


def band_index(percentiles: np.ndarray, beyond: np.ndarray) -> np.ndarray:
    """Index into BANDS of each percentile: (lo, hi] ([0, 50] first); `beyond` rows go to the last."""
    where = "band_index"
    p = _vector(where, "percentiles", percentiles)
    if p.size and (p.min() < 0 or p.max() > 100):
        raise LeukoError(f"{where}: percentiles must lie in [0, 100]")
    out_of_range = _flags(where, "beyond", beyond, p.size)
    if np.any(out_of_range & (p < 100)):
        raise LeukoError(f"{where}: beyond is set for a percentile below 100")
    edges = np.array([hi for _, hi in BANDS[:-2]], dtype=np.float64)  # 50, 90, 99
    idx = np.searchsorted(edges, p, side="left")  # p <= 50 -> 0, 50 < p <= 90 -> 1, ...
    idx[out_of_range] = len(BANDS) - 1
    return idx


def accuracy_by_band(percentiles: np.ndarray, correct: np.ndarray, beyond: np.ndarray,
                     confidence: float = 0.95) -> pd.DataFrame:
    """Accuracy with its Wilson interval per percentile band (every band listed; NaN where empty)."""
    confidence = check_confidence("accuracy_by_band", confidence)
    idx = band_index(percentiles, beyond)
    ok = _flags("accuracy_by_band", "correct", correct, idx.size)
    rows = []
    for i, label in enumerate(BAND_LABELS):
        mask = idx == i
        n, k = int(mask.sum()), int(ok[mask].sum())
        low, high = wilson(k, n, confidence) if n else (math.nan, math.nan)
        rows.append({"band": label, "n": n, "n_correct": k,
                     "accuracy": k / n if n else math.nan, "low": low, "high": high})
    return pd.DataFrame(rows, columns=["band", "n", "n_correct", "accuracy", "low", "high"])


# ---------------------------------------------------------------- risk-coverage

def risk_coverage(scores: np.ndarray, correct: np.ndarray) -> pd.DataFrame:
    """Accuracy of the k most usual images (lowest score first, ties in original order), k = 1..n.
    Columns: coverage (k/n), n_kept, accuracy, score (the k-th kept image's score)."""
    s = _vector("risk_coverage", "scores", scores)
    if s.size == 0:
        raise LeukoError("risk_coverage: no scores")
    ok = _flags("risk_coverage", "correct", correct, s.size)
    order = np.argsort(s, kind="stable")
    kept = np.arange(1, s.size + 1)
    return pd.DataFrame({"coverage": kept / s.size, "n_kept": kept,
                         "accuracy": np.cumsum(ok[order]) / kept, "score": s[order]})


def check_risk_table(where: str, table: pd.DataFrame) -> None:
    """LeukoError unless `table` is a non-empty risk_coverage table."""
    if not isinstance(table, pd.DataFrame) or not {"coverage", "accuracy"} <= set(table.columns):
        raise LeukoError(f"{where}: table must be a risk_coverage DataFrame (coverage, accuracy)")
    if table.empty:
        raise LeukoError(f"{where}: table is empty")


def aurc(table: pd.DataFrame) -> float:
    """Area under the risk-coverage curve: mean of 1 - accuracy over the rows (k = 1..n)."""
    check_risk_table("aurc", table)
    return float(np.mean(1.0 - table["accuracy"].to_numpy(dtype=np.float64)))


def accuracy_at_coverage(table: pd.DataFrame, coverage: float) -> float:
    """Accuracy of the fewest most-usual images that reach at least `coverage` (0 < coverage <= 1)."""
    check_risk_table("accuracy_at_coverage", table)
    try:
        c = float(coverage)
    except (TypeError, ValueError):
        raise LeukoError(f"accuracy_at_coverage: coverage = {coverage!r} is not a number") from None
    if not 0 < c <= 1:
        raise LeukoError(f"accuracy_at_coverage: coverage = {coverage!r} is not in (0, 1]")
    cov = table["coverage"].to_numpy(dtype=np.float64)
    i = min(int(np.searchsorted(cov, c - 1e-12, side="left")), cov.size - 1)
    return float(table["accuracy"].iloc[i])
