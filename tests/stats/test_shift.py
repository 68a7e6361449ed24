"""Shift measures on embeddings: domain AUC with its Newcombe interval, DeLong, kNN distance, bands, risk-coverage."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import stats
from sklearn.metrics import roc_auc_score

from leukoreport.base.errors import LeukoError
from leukoreport.report.figures.validity import plot_ood_bands, plot_risk_coverage
from leukoreport.stats.shift import (
    BAND_LABELS,
    BANDS,
    DOMAIN_METHOD,
    accuracy_at_coverage,
    accuracy_by_band,
    aurc,
    band_index,
    beyond_reference,
    calibrate_auc,
    delong_interval,
    delong_variance,
    domain_auc,
    knn_distance,
    newcombe_interval,
    newcombe_variance,
    percentile_of,
    risk_coverage,
)


def direct_delong(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """AUC and DeLong variance from the O(n*m) psi matrix (1 if x > y, 0.5 if equal, 0 otherwise)."""
    x = scores[labels == 1]
    y = scores[labels == 0]
    psi = (x[:, None] > y[None, :]) + 0.5 * (x[:, None] == y[None, :])
    v10 = psi.mean(axis=1)
    v01 = psi.mean(axis=0)
    s10 = ((v10 - v10.mean()) ** 2).sum() / (x.size - 1)
    s01 = ((v01 - v01.mean()) ** 2).sum() / (y.size - 1)
    return float(psi.mean()), float(s10 / x.size + s01 / y.size)


def direct_newcombe(auc: float, m: int, n: int, confidence: float) -> tuple[float, float]:
    """Newcombe (2006) method 5 ends as the real roots in [0, 1] of the quartic obtained by multiplying
    (auc - t)^2 = z^2 t(1-t)[1 + (N*-1)((1-t)/(2-t) + t/(1+t))]/(mn) by (2-t)(1+t)."""
    z2 = stats.norm.ppf(0.5 + confidence / 2) ** 2
    star = (m + n) / 2 - 1
    P = np.polynomial.Polynomial
    t = P([0, 1])
    left = (auc - t) ** 2 * (2 - t) * (1 + t) * m * n
    right = z2 * t * (1 - t) * ((2 - t) * (1 + t) + (star - 1) * ((1 - t) * (1 + t) + t * (2 - t)))
    roots = [r.real for r in (left - right).roots() if abs(r.imag) < 1e-9 and -1e-9 <= r.real <= 1 + 1e-9]
    low = min([r for r in roots if r <= auc + 1e-12], default=0.0)
    high = max([r for r in roots if r >= auc - 1e-12], default=1.0)
    return max(0.0, low), min(1.0, high)


def brute_knn(train: np.ndarray, query: np.ndarray, k: int, exclude_self: bool) -> np.ndarray:
    """k-th smallest Euclidean distance between normalised rows, from every pair."""
    t = train / np.linalg.norm(train, axis=1, keepdims=True)
    q = query / np.linalg.norm(query, axis=1, keepdims=True)
    out = []
    for i, row in enumerate(q):
        d = np.linalg.norm(t - row, axis=1)
        if exclude_self:
            d = np.delete(d, i)
        d = np.sort(d)
        out.append(d[min(k, d.size) - 1])
    return np.array(out)


def assert_png(path: Path) -> None:
    """The file exists and opens as a PNG."""
    assert path.is_file() and path.stat().st_size > 0
    with Image.open(path) as img:
        assert img.format == "PNG"
        img.verify()


# ---------------------------------------------------------------- domain classifier

def test_domain_auc_same_distribution_interval_holds_half():
    rng = np.random.default_rng(1)
    train = rng.normal(size=(300, 16))
    other = rng.normal(size=(60, 16))
    res = domain_auc(train, other)
    assert res["low"] <= 0.5 <= res["high"]
    assert res["n_train"] == 300 and res["n_set"] == 60 and res["folds"] == 5
    assert res["method"] == DOMAIN_METHOD
    assert {"auc", "low", "high", "auc_raw", "null_auc", "p_permutation", "n_train", "n_set", "folds",
            "method", "fold_aucs"} <= set(res)


def test_domain_auc_is_the_weighted_within_fold_auc():
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(8)
    train, other = rng.normal(size=(80, 5)), rng.normal(size=(30, 5)) + 0.4
    from sklearn.decomposition import PCA

    res = domain_auc(train, other, folds=3, seed=4, max_per_side=None, components=4)
    x, y = np.vstack([train, other]), np.r_[np.zeros(80), np.ones(30)]
    x = PCA(4, random_state=4).fit_transform(StandardScaler().fit_transform(x))
    num = den = 0.0
    for fit, held in StratifiedKFold(3, shuffle=True, random_state=4).split(x, y):
        model = make_pipeline(LogisticRegression(C=1.0, max_iter=2000)).fit(x[fit], y[fit])
        pairs = y[held].sum() * (1 - y[held]).sum()
        num += roc_auc_score(y[held], model.decision_function(x[held])) * pairs
        den += pairs
    assert res["auc_raw"] == pytest.approx(num / den, abs=1e-12)
    assert res["auc"] == pytest.approx(calibrate_auc(num / den, res["null_auc"]), abs=1e-12)


def test_calibration_maps_the_null_to_one_half_and_keeps_the_ends():
    assert calibrate_auc(0.34, 0.34) == 0.5 and calibrate_auc(1.0, 0.34) == 1.0 and calibrate_auc(0.0, 0.34) == 0.0
    assert calibrate_auc(0.67, 0.34) == pytest.approx(0.5 + 0.5 * 0.33 / 0.66)
    assert calibrate_auc(0.17, 0.34) == pytest.approx(0.25)
    assert calibrate_auc(0.7, 0.5) == pytest.approx(0.7)  # an unbiased null changes nothing


def test_a_set_of_near_twins_of_training_images_scores_below_one_half():
    # every set image has a near twin among the training images (duplicates, same patients): a held-out image is
    # scored like its fitted twin on the other side, so the AUC falls clearly below 0.5 (the report says so)
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(60, 40)) * 3
    res = domain_auc(centres + rng.normal(size=(60, 40)) * 0.3, centres + rng.normal(size=(60, 40)) * 0.3, seed=1)
    assert res["high"] < 0.5 and res["null_auc"] == pytest.approx(0.5, abs=0.05)


def test_domain_auc_has_no_downward_bias_when_nothing_differs():
    # pooling out-of-fold scores of small samples gives AUCs well below 0.5 under the null; within-fold does not
    aucs = [domain_auc(np.random.default_rng(s).normal(size=(60, 20)),
                       np.random.default_rng(100 + s).normal(size=(20, 20)), seed=s)["auc"] for s in range(30)]
    assert abs(np.mean(aucs) - 0.5) < 0.04


def test_domain_auc_shifted_set_is_separable():
    rng = np.random.default_rng(2)
    train = rng.normal(size=(300, 16))
    other = rng.normal(size=(60, 16)) + 1.0
    res = domain_auc(train, other)
    assert res["auc"] > 0.9 and res["low"] > 0.8
    assert 0 <= res["low"] <= res["auc"] <= res["high"] <= 1


def test_domain_auc_is_reproducible_and_subsamples():
    rng = np.random.default_rng(3)
    train = rng.normal(size=(120, 8))
    other = rng.normal(size=(90, 8)) + 0.3
    a = domain_auc(train, other, seed=7, max_per_side=50)
    b = domain_auc(train, other, seed=7, max_per_side=50)
    assert a == b
    assert a["n_train"] == 50 and a["n_set"] == 50
    full = domain_auc(train, other, max_per_side=None)
    assert full["n_train"] == 120 and full["n_set"] == 90


@pytest.mark.parametrize("n_set", [4, 5, 9, 11])
def test_domain_auc_small_sets_reduce_folds(n_set):
    rng = np.random.default_rng(n_set)
    res = domain_auc(rng.normal(size=(40, 6)), rng.normal(size=(n_set, 6)) + 2.0)
    assert res["folds"] == min(5, n_set // 2)
    assert 0 <= res["low"] <= res["auc"] <= res["high"] <= 1


@pytest.mark.parametrize("n_train, n_set", [(3, 10), (10, 3), (0, 10), (10, 0)])
def test_domain_auc_needs_four_per_side(n_train, n_set):
    with pytest.raises(LeukoError, match="at least 4 images on each side"):
        domain_auc(np.zeros((n_train, 4)), np.ones((n_set, 4)))


def test_domain_auc_rejects_bad_input():
    with pytest.raises(LeukoError, match="features"):
        domain_auc(np.zeros((5, 4)), np.zeros((5, 3)))
    with pytest.raises(LeukoError, match="NaN"):
        domain_auc(np.full((5, 4), np.nan), np.zeros((5, 4)))
    with pytest.raises(LeukoError, match="folds"):
        domain_auc(np.zeros((5, 4)), np.zeros((5, 4)), folds=1)


# ---------------------------------------------------------------- Newcombe score interval

@pytest.mark.parametrize("auc, m, n, confidence", [(1.0, 9, 9, 0.95), (0.0, 9, 9, 0.95), (0.8, 9, 70, 0.95),
                                                    (0.5, 3, 14, 0.9), (0.93, 40, 25, 0.99), (0.97, 2, 18, 0.95)])
def test_newcombe_interval_equals_the_direct_computation(auc, m, n, confidence):
    low, high = newcombe_interval(auc, m, n, confidence)
    want = direct_newcombe(auc, m, n, confidence)
    assert low == pytest.approx(want[0], abs=1e-8) and high == pytest.approx(want[1], abs=1e-8)
    assert 0 <= low <= auc <= high <= 1


def test_newcombe_variance_is_hanley_mcneil_with_n_star():
    theta, m, n = 0.8, 9, 12
    star = (m + n) / 2 - 1
    q1, q2 = theta / (2 - theta), 2 * theta ** 2 / (1 + theta)  # Hanley-McNeil's Q1, Q2
    want = (theta * (1 - theta) + (star - 1) * (q1 - theta ** 2) + (star - 1) * (q2 - theta ** 2)) / (m * n)
    assert newcombe_variance(theta, m, n) == pytest.approx(want, rel=1e-12)


def test_newcombe_interval_keeps_its_width_at_one():
    low, high = newcombe_interval(1.0, 9, 9)
    assert high == 1.0 and 1.0 - low > 0.05
    labels = np.r_[np.zeros(9, dtype=int), np.ones(9, dtype=int)]
    assert delong_interval(np.arange(18.0), labels)[1:] == (1.0, 1.0)  # DeLong collapses there


@pytest.mark.parametrize("shift", [0.5, 1.0, 1.5])
def test_newcombe_interval_is_close_to_delong_on_large_balanced_sets(shift):
    rng = np.random.default_rng(int(10 * shift))
    labels = np.r_[np.zeros(500, dtype=int), np.ones(500, dtype=int)]
    scores = rng.normal(size=1000) + shift * labels
    auc, low, high = delong_interval(scores, labels)
    n_low, n_high = newcombe_interval(auc, 500, 500)
    assert n_low == pytest.approx(low, abs=0.006) and n_high == pytest.approx(high, abs=0.006)


def test_domain_auc_interval_is_the_newcombe_interval_over_the_folds():
    rng = np.random.default_rng(5)
    res = domain_auc(rng.normal(size=(70, 8)), rng.normal(size=(9, 8)) + 3.0, seed=0, permutations=5)
    sizes = res["fold_sizes"]
    w = np.array([m * n for m, n in sizes], dtype=float)
    w /= w.sum()
    z2 = stats.norm.ppf(0.975) ** 2
    grid = np.linspace(0, 1, 200001)
    var = sum(wi ** 2 * np.array([newcombe_variance(t, m, n) for t in grid]) for wi, (m, n) in zip(w, sizes))
    inside = grid[(res["auc_raw"] - grid) ** 2 <= z2 * var]
    assert res["raw_low"] == pytest.approx(inside.min(), abs=1e-5)
    assert res["raw_high"] == pytest.approx(inside.max(), abs=1e-5)
    assert res["low"] == pytest.approx(calibrate_auc(res["raw_low"], res["null_auc"]), abs=1e-12)
    assert res["high"] == pytest.approx(calibrate_auc(res["raw_high"], res["null_auc"]), abs=1e-12)
    assert res["high"] - res["low"] > 0.05  # nine images: never a point at 1


# ---------------------------------------------------------------- DeLong

@pytest.mark.parametrize("ties", [False, True])
def test_delong_matches_direct_computation(ties):
    rng = np.random.default_rng(11)
    labels = np.r_[np.zeros(37, dtype=int), np.ones(23, dtype=int)]
    rng.shuffle(labels)
    scores = rng.normal(size=labels.size) + 0.8 * labels
    if ties:
        scores = np.round(scores * 2) / 2  # many ties, within and across classes
    auc, var = delong_variance(scores, labels)
    want_auc, want_var = direct_delong(scores, labels)
    assert auc == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert auc == pytest.approx(want_auc, abs=1e-12)
    assert var == pytest.approx(want_var, rel=1e-10)
    a, low, high = delong_interval(scores, labels, 0.9)
    z = stats.norm.ppf(0.95)
    assert a == auc
    assert low == pytest.approx(max(0.0, auc - z * math.sqrt(want_var)))
    assert high == pytest.approx(min(1.0, auc + z * math.sqrt(want_var)))


def test_delong_all_tied_and_perfect():
    labels = np.array([0, 0, 0, 1, 1])
    auc, low, high = delong_interval(np.zeros(5), labels)
    assert auc == 0.5 and low == 0.5 and high == 0.5
    auc, low, high = delong_interval(np.array([0.0, 1, 2, 3, 4]), labels)
    assert (auc, low, high) == (1.0, 1.0, 1.0)


def test_delong_rejects_bad_labels():
    with pytest.raises(LeukoError, match="at least 2"):
        delong_interval(np.array([0.1, 0.2, 0.3]), np.array([0, 0, 1]))
    with pytest.raises(LeukoError, match="0 or 1"):
        delong_interval(np.array([0.1, 0.2, 0.3, 0.4]), np.array([0, 2, 1, 1]))
    with pytest.raises(LeukoError, match="confidence"):
        delong_interval(np.array([0.1, 0.2, 0.3, 0.4]), np.array([0, 0, 1, 1]), 1.5)


# ---------------------------------------------------------------- kNN distance

@pytest.mark.parametrize("k", [1, 3, 10, 500])
def test_knn_distance_matches_brute_force(k):
    rng = np.random.default_rng(k)
    train = rng.normal(size=(40, 7)) * rng.uniform(0.5, 3, size=(40, 1))
    query = rng.normal(size=(25, 7))
    got = knn_distance(train, query, k=k)
    assert got.shape == (25,)
    np.testing.assert_allclose(got, brute_knn(train, query, k, False), atol=1e-7)
    own = knn_distance(train, train, k=k, exclude_self=True)
    np.testing.assert_allclose(own, brute_knn(train, train, k, True), atol=1e-7)


def test_knn_distance_crosses_chunks(monkeypatch):
    import leukoreport.stats.shift as shift

    monkeypatch.setattr(shift, "KNN_CHUNK", 16)
    rng = np.random.default_rng(5)
    train = rng.normal(size=(50, 5))
    np.testing.assert_allclose(knn_distance(train, train, k=4, exclude_self=True),
                               brute_knn(train, train, 4, True), atol=1e-7)


def test_knn_distance_self_match_skipped_and_scale_free():
    rng = np.random.default_rng(6)
    train = rng.normal(size=(30, 4))
    assert np.allclose(knn_distance(train, train, k=1), 0.0, atol=1e-6)
    assert np.all(knn_distance(train, train, k=1, exclude_self=True) > 1e-3)
    np.testing.assert_allclose(knn_distance(train, 5 * train[:3], k=2),
                               knn_distance(train, train[:3], k=2), atol=1e-7)


def test_shifted_query_is_further():
    rng = np.random.default_rng(8)
    train = rng.normal(size=(400, 32)) + 1.0
    near = rng.normal(size=(100, 32)) + 1.0
    far = rng.normal(size=(100, 32)) + 1.0
    far[:, :16] -= 2.0  # rotate the mean direction: normalised rows differ
    d_near = knn_distance(train, near, k=10)
    d_far = knn_distance(train, far, k=10)
    assert np.median(d_far) > np.median(d_near)
    assert d_far.mean() > d_near.mean()


def test_knn_distance_rejects_bad_input():
    with pytest.raises(LeukoError, match="features"):
        knn_distance(np.zeros((5, 4)) + 1, np.zeros((5, 3)) + 1)
    with pytest.raises(LeukoError, match="exclude_self"):
        knn_distance(np.ones((5, 4)), np.ones((4, 4)), exclude_self=True)
    with pytest.raises(LeukoError, match="k = 0"):
        knn_distance(np.ones((5, 4)), np.ones((4, 4)), k=0)
    with pytest.raises(LeukoError, match="no rows"):
        knn_distance(np.ones((0, 4)), np.ones((4, 4)))


# ---------------------------------------------------------------- percentiles and bands

def test_percentile_of_equals_loop():
    rng = np.random.default_rng(9)
    reference = np.round(rng.normal(size=57), 1)
    scores = np.r_[np.round(rng.normal(size=40), 1), reference.min() - 1, reference.max(),
                   reference.max() + 1]
    want = [100.0 * sum(r <= s for r in reference) / reference.size for s in scores]
    np.testing.assert_allclose(percentile_of(scores, reference), want)
    beyond = beyond_reference(scores, reference)
    assert beyond.tolist() == [s > reference.max() for s in scores]


def test_bands_constant():
    assert [(0, 50), (50, 90), (90, 99), (99, 100), (100, math.inf)] == BANDS
    assert BAND_LABELS == ["≤ 50th", "50–90th", "90–99th", "99–100th", "beyond every test image"]


def test_band_edges():
    p = np.array([0, 50, 50.01, 90, 90.5, 99, 99.5, 100, 100])
    beyond = np.array([0, 0, 0, 0, 0, 0, 0, 0, 1], dtype=bool)
    assert band_index(p, beyond).tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4]
    with pytest.raises(LeukoError, match="below 100"):
        band_index(np.array([99.0]), np.array([True]))
    with pytest.raises(LeukoError, match="0, 100"):
        band_index(np.array([101.0]), np.array([False]))


def test_accuracy_by_band_equals_hand_counts():
    rng = np.random.default_rng(10)
    reference = rng.normal(size=200)
    scores = np.r_[rng.normal(size=300), reference.max(), reference.max() + 0.5, 10.0]
    correct = rng.random(scores.size) < 0.8
    p = percentile_of(scores, reference)
    beyond = beyond_reference(scores, reference)
    table = accuracy_by_band(p, correct, beyond)
    assert list(table.columns) == ["band", "n", "n_correct", "accuracy", "low", "high"]
    assert table["band"].tolist() == BAND_LABELS
    hand = {label: [0, 0] for label in BAND_LABELS}
    for pi, bi, ci in zip(p, beyond, correct):
        if bi:
            label = BAND_LABELS[4]
        elif pi <= 50:
            label = BAND_LABELS[0]
        elif pi <= 90:
            label = BAND_LABELS[1]
        elif pi <= 99:
            label = BAND_LABELS[2]
        else:
            label = BAND_LABELS[3]
        hand[label][0] += 1
        hand[label][1] += int(ci)
    for row in table.itertuples():
        n, k = hand[row.band]
        assert (row.n, row.n_correct) == (n, k)
        assert row.accuracy == pytest.approx(k / n)
        assert row.low <= row.accuracy <= row.high
    assert table["n"].sum() == scores.size
    assert table.loc[4, "n"] == 2  # reference.max() itself is tied, not beyond


def test_accuracy_by_band_empty_band_is_nan():
    table = accuracy_by_band(np.array([10.0, 20.0]), np.array([True, False]), np.array([False, False]))
    assert table.loc[0, "n"] == 2 and table.loc[0, "accuracy"] == 0.5
    empty = table.iloc[1:]
    assert (empty["n"] == 0).all()
    assert empty[["accuracy", "low", "high"]].isna().all().all()


# ---------------------------------------------------------------- risk-coverage

def test_risk_coverage_equals_loop_with_ties():
    rng = np.random.default_rng(12)
    scores = np.round(rng.random(60), 1)  # plenty of ties
    correct = rng.random(60) < 0.7
    table = risk_coverage(scores, correct)
    assert len(table) == 60
    ranked = sorted(range(60), key=lambda i: (scores[i], i))
    for k in range(1, 61):
        kept = ranked[:k]
        row = table.iloc[k - 1]
        assert row["n_kept"] == k
        assert row["coverage"] == pytest.approx(k / 60)
        assert row["accuracy"] == pytest.approx(sum(correct[i] for i in kept) / k)
    assert aurc(table) == pytest.approx(np.mean([1 - a for a in table["accuracy"]]))
    assert table["accuracy"].iloc[-1] == pytest.approx(correct.mean())


def test_accuracy_at_coverage():
    table = risk_coverage(np.arange(10.0), np.array([1, 1, 1, 1, 0, 1, 0, 0, 1, 0], dtype=bool))
    assert accuracy_at_coverage(table, 1.0) == pytest.approx(0.6)
    assert accuracy_at_coverage(table, 0.4) == pytest.approx(1.0)
    assert accuracy_at_coverage(table, 0.45) == pytest.approx(0.8)  # 5 images reach 45%
    assert accuracy_at_coverage(table, 0.01) == 1.0
    for bad in (0, 1.5, "x"):
        with pytest.raises(LeukoError, match="coverage"):
            accuracy_at_coverage(table, bad)


def test_risk_coverage_rejects_bad_input():
    with pytest.raises(LeukoError, match="no scores"):
        risk_coverage(np.array([]), np.array([], dtype=bool))
    with pytest.raises(LeukoError, match="length"):
        risk_coverage(np.arange(3.0), np.array([True, False]))
    with pytest.raises(LeukoError, match="empty"):
        aurc(pd.DataFrame({"coverage": [], "accuracy": []}))


# ---------------------------------------------------------------- figures

NAMES = ["MO_$\\frac$_1", "a$5 and $6", "plain"]


def test_plots_draw_names_literally(tmp_path):
    rng = np.random.default_rng(13)
    reference = rng.normal(size=200)
    curves, bands = {}, {}
    for shift, name in enumerate(NAMES):
        scores = rng.normal(size=150) + 0.5 * shift
        correct = rng.random(150) < 0.9 - 0.2 * (scores > 1.5)
        curves[name] = risk_coverage(scores, correct)
        bands[name] = accuracy_by_band(percentile_of(scores, reference), correct,
                                       beyond_reference(scores, reference))
    plot_risk_coverage(curves, tmp_path / "MO_$\\frac$_1 rc.png", "risk for a$5 and $6")
    plot_ood_bands(bands, tmp_path / "bands.png", "bands of MO_$\\frac$_1")
    assert_png(tmp_path / "MO_$\\frac$_1 rc.png")
    assert_png(tmp_path / "bands.png")


def test_plots_reject_empty():
    with pytest.raises(LeukoError, match="no curves"):
        plot_risk_coverage({}, "unused.png", "t")
    with pytest.raises(LeukoError, match="no sets"):
        plot_ood_bands({}, "unused.png", "t")
