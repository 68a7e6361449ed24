"""Tests of leukoreport.stats.intervals against hand-computed values, scipy and scikit-learn."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import balanced_accuracy_score, f1_score, recall_score

from leukoreport.base.errors import LeukoError
from leukoreport.stats.intervals import (
    BootstrapCI,
    balanced_accuracy,
    bootstrap_ci,
    macro_f1,
    newcombe_difference,
    wilson,
)

Z95 = 1.959963984540054  # the 0.975 quantile of the standard normal


def wilson_by_hand(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson (1927): (p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n), clipped to [0, 1]."""
    p = k / n
    centre = (p + z ** 2 / (2 * n)) / (1 + z ** 2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z ** 2 / (4 * n ** 2)) / (1 + z ** 2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


# ---------------------------------------------------------------- Wilson

def test_wilson_all_successes_has_closed_form_lower_bound():
    # For k = n the lower bound reduces to n / (n + z²): 9 / (9 + 3.841459) = 0.700855.
    low, high = wilson(9, 9)
    assert low == pytest.approx(9 / (9 + Z95 ** 2), abs=1e-12)
    assert low == pytest.approx(0.70085, abs=1e-5)
    assert high == 1.0
    assert f"{100 * low:.1f}–{100 * high:.1f}" == "70.1–100.0"


def test_wilson_zero_successes_and_half():
    # k = 0: lower 0, upper z² / (n + z²) = 3.841459 / 13.841459 = 0.277533.
    low, high = wilson(0, 10)
    assert low == 0.0
    assert high == pytest.approx(Z95 ** 2 / (10 + Z95 ** 2), abs=1e-12)
    assert high == pytest.approx(0.27753, abs=1e-5)
    # k = 5 of 10: centre 0.5, half-width z·sqrt(0.025 + z²/400) / (1 + z²/10) = 0.263407.
    low, high = wilson(5, 10)
    assert low == pytest.approx(0.236593, abs=1e-6)
    assert high == pytest.approx(0.763407, abs=1e-6)
    assert low + high == pytest.approx(1.0, abs=1e-12)


def test_wilson_373_of_375():
    low, high = wilson(373, 375)
    assert (low, high) == pytest.approx(wilson_by_hand(373, 375), abs=1e-12)
    ci = stats.binomtest(373, 375).proportion_ci(method="wilson")
    assert (low, high) == pytest.approx((ci.low, ci.high), abs=1e-12)
    assert f"{100 * low:.1f}–{100 * high:.1f}" == "98.1–99.9"


@pytest.mark.parametrize("n", [1, 2, 7, 9, 30, 100, 375, 1000])
def test_wilson_agrees_with_scipy_over_a_grid(n):
    for k in sorted({0, 1, n // 3, n // 2, n - 1, n}):
        for confidence in (0.8, 0.95, 0.99):
            ci = stats.binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
            assert wilson(k, n, confidence) == pytest.approx((ci.low, ci.high), abs=1e-12), (k, n)


def test_wilson_matches_the_formula_written_out():
    for k, n in [(0, 1), (1, 3), (4, 9), (37, 40), (200, 375)]:
        assert wilson(k, n) == pytest.approx(wilson_by_hand(k, n), abs=1e-12)
    z90 = stats.norm.ppf(0.95)
    assert wilson(3, 12, 0.90) == pytest.approx(wilson_by_hand(3, 12, z90), abs=1e-12)


def test_wilson_accepts_numpy_integers():
    assert wilson(np.int64(9), np.int64(9)) == wilson(9, 9)


@pytest.mark.parametrize("args, message", [
    ((10, 9), "wilson: k = 10 exceeds n = 9"),
    ((0, 0), "wilson: n = 0 must be at least 1"),
    ((-1, 5), "wilson: k = -1 is negative"),
    ((1.5, 5), "wilson: k = 1.5 is not an integer"),
    ((1, 5, 1.0), "wilson: confidence = 1.0 is not strictly between 0 and 1"),
    ((1, 5, 0), "wilson: confidence = 0 is not strictly between 0 and 1"),
])
def test_wilson_errors(args, message):
    with pytest.raises(LeukoError) as info:
        wilson(*args)
    assert str(info.value) == message


# ---------------------------------------------------------------- Newcombe

def newcombe_by_hand(k1, n1, k2, n2, z=Z95):
    """Newcombe (1998) method 10: p1 - p2 - sqrt((p1-l1)² + (u2-p2)²), ... + sqrt((u1-p1)² + (p2-l2)²)."""
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_by_hand(k1, n1, z)
    l2, u2 = wilson_by_hand(k2, n2, z)
    delta = p1 - p2
    return (delta - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
            delta + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2))


@pytest.mark.parametrize("counts", [(56, 70, 48, 80), (9, 10, 3, 10), (373, 375, 9, 9),
                                    (9, 9, 373, 375), (0, 10, 0, 20), (3, 17, 12, 13)])
def test_newcombe_matches_the_formula_written_out(counts):
    assert newcombe_difference(*counts) == pytest.approx(newcombe_by_hand(*counts), abs=1e-12)


# Newcombe (1998), Statistics in Medicine 17:873-890, Table II, method 10 (score, no CC).
# Each bound is printed to 4 decimals; the 56/70 - 48/80 difference is +0.2, so its interval is
# +0.0524 to +0.3339 (both bounds positive).
NEWCOMBE_TABLE_II = [
    ((56, 70, 48, 80), (0.0524, 0.3339)),
    ((9, 10, 3, 10), (0.1705, 0.8090)),
    ((6, 7, 2, 7), (0.0582, 0.8062)),
    ((5, 56, 0, 29), (-0.0381, 0.1926)),
    ((0, 10, 0, 20), (-0.1611, 0.2775)),
    ((0, 10, 0, 10), (-0.2775, 0.2775)),
    ((10, 10, 0, 20), (0.6791, 1.0000)),
    ((10, 10, 0, 10), (0.6075, 1.0000)),
]


@pytest.mark.parametrize("counts, published", NEWCOMBE_TABLE_II)
def test_newcombe_reproduces_published_table(counts, published):
    low, high = newcombe_difference(*counts)
    assert low == pytest.approx(published[0], abs=6e-5)
    assert high == pytest.approx(published[1], abs=6e-5)


def test_newcombe_is_antisymmetric_and_contains_the_difference():
    rng = np.random.default_rng(3)
    for _ in range(50):
        n1, n2 = (int(v) for v in rng.integers(1, 400, 2))
        k1, k2 = int(rng.integers(0, n1 + 1)), int(rng.integers(0, n2 + 1))
        low, high = newcombe_difference(k1, n1, k2, n2)
        swapped = newcombe_difference(k2, n2, k1, n1)
        assert swapped == pytest.approx((-high, -low), abs=1e-12)
        assert -1 <= low <= k1 / n1 - k2 / n2 <= high <= 1


def test_newcombe_errors_name_the_argument():
    with pytest.raises(LeukoError, match=r"newcombe_difference: k2 = 12 exceeds n2 = 10"):
        newcombe_difference(5, 10, 12, 10)
    with pytest.raises(LeukoError, match=r"newcombe_difference: n1 = 0"):
        newcombe_difference(0, 0, 1, 10)
    with pytest.raises(LeukoError, match=r"confidence"):
        newcombe_difference(1, 10, 1, 10, confidence=95)


# ---------------------------------------------------------------- vectorised statistics

def sk_balanced_accuracy(t, p):
    """sklearn's macro recall restricted to the classes present in t."""
    return recall_score(t, p, labels=np.unique(t), average="macro", zero_division=0)


def sk_macro_f1(t, p):
    """sklearn's macro F1 restricted to the classes present in t."""
    return f1_score(t, p, labels=np.unique(t), average="macro", zero_division=0)


def noisy_predictions(rng, n, k, accuracy=0.7):
    """Random labels 0..k-1 and predictions that are right about `accuracy` of the time."""
    y_true = rng.integers(0, k, n)
    y_pred = np.where(rng.random(n) < accuracy, y_true, rng.integers(0, k, n))
    return y_true, y_pred


def test_statistics_by_hand():
    # Classes 0 (support 3), 1 (support 1), 2 absent but predicted once.
    y_true = [0, 0, 0, 1]
    y_pred = [0, 0, 2, 0]
    # Recall: class 0 2/3, class 1 0/1 -> balanced accuracy 1/3.
    assert balanced_accuracy(y_true, y_pred, 3) == pytest.approx(1 / 3, abs=1e-15)
    # F1 = 2TP / (support + predicted): class 0 4/(3+3) = 2/3, class 1 0/(1+0) = 0 -> mean 1/3.
    assert macro_f1(y_true, y_pred, 3) == pytest.approx(1 / 3, abs=1e-15)


@pytest.mark.parametrize("seed", range(5))
def test_statistics_agree_with_sklearn_on_1d(seed):
    rng = np.random.default_rng(seed)
    y_true, y_pred = noisy_predictions(rng, int(rng.integers(5, 200)), 5)
    ba, f1 = balanced_accuracy(y_true, y_pred, 5), macro_f1(y_true, y_pred, 5)
    assert isinstance(ba, float) and isinstance(f1, float)
    assert ba == pytest.approx(sk_balanced_accuracy(y_true, y_pred), abs=1e-12)
    assert ba == pytest.approx(balanced_accuracy_score(y_true, y_pred), abs=1e-12)
    assert f1 == pytest.approx(sk_macro_f1(y_true, y_pred), abs=1e-12)


def test_statistics_with_an_absent_class_agree_with_sklearn():
    rng = np.random.default_rng(7)
    y_true, y_pred = noisy_predictions(rng, 60, 5)
    y_true = np.where(y_true == 3, 0, y_true)     # class 3 never true ...
    y_pred[:4] = 3                                # ... but predicted a few times
    assert 3 not in y_true and 3 in y_pred
    assert balanced_accuracy(y_true, y_pred, 5) == pytest.approx(sk_balanced_accuracy(y_true, y_pred),
                                                                 abs=1e-12)
    assert macro_f1(y_true, y_pred, 5) == pytest.approx(sk_macro_f1(y_true, y_pred), abs=1e-12)
    # Averaging over all five classes would differ: the absent class is ignored, not scored 0.
    all_five = f1_score(y_true, y_pred, labels=range(5), average="macro", zero_division=0)
    assert macro_f1(y_true, y_pred, 5) != pytest.approx(all_five, abs=1e-6)


def test_statistics_on_a_batch_agree_with_a_loop_over_sklearn():
    rng = np.random.default_rng(11)
    rows = [noisy_predictions(rng, 40, 4, accuracy=0.5) for _ in range(30)]
    y_true = np.stack([t for t, _ in rows])
    y_pred = np.stack([p for _, p in rows])
    y_true[0] = np.where(y_true[0] == 2, 1, y_true[0])   # one sample without class 2
    y_true[1] = 0                                       # one sample with a single class
    expected_ba = [sk_balanced_accuracy(t, p) for t, p in zip(y_true, y_pred)]
    expected_f1 = [sk_macro_f1(t, p) for t, p in zip(y_true, y_pred)]
    ba, f1 = balanced_accuracy(y_true, y_pred, 4), macro_f1(y_true, y_pred, 4)
    assert ba.shape == f1.shape == (30,)
    np.testing.assert_allclose(ba, expected_ba, rtol=0, atol=1e-12)
    np.testing.assert_allclose(f1, expected_f1, rtol=0, atol=1e-12)
    # The same along axis 0 of the transposed arrays, and on a 3-d (3, 10, n) stack.
    np.testing.assert_allclose(balanced_accuracy(y_true.T, y_pred.T, 4, axis=0), expected_ba, atol=1e-12)
    np.testing.assert_allclose(macro_f1(y_true.reshape(3, 10, 40), y_pred.reshape(3, 10, 40), 4),
                               np.reshape(expected_f1, (3, 10)), atol=1e-12)


@pytest.mark.parametrize("func", [balanced_accuracy, macro_f1])
def test_statistic_errors(func):
    with pytest.raises(LeukoError, match="shape"):
        func([0, 1, 1], [0, 1], 2)
    with pytest.raises(LeukoError, match="empty"):
        func([], [], 2)
    with pytest.raises(LeukoError, match=r"y_pred has labels outside 0\.\.1: \[2\]"):
        func([0, 1], [0, 2], 2)
    with pytest.raises(LeukoError, match="y_true has labels outside"):
        func([-1, 1], [0, 1], 2)
    with pytest.raises(LeukoError, match="integer class indices"):
        func(["a", "b"], ["a", "b"], 2)
    with pytest.raises(LeukoError, match="n_classes"):
        func([0, 1], [0, 1], 0)


# ---------------------------------------------------------------- bootstrap

def test_bootstrap_agrees_with_a_direct_scipy_call_on_sklearn_statistics():
    rng = np.random.default_rng(5)
    y_true, y_pred = noisy_predictions(rng, 80, 5)
    for name, reference in (("balanced_accuracy", sk_balanced_accuracy), ("macro_f1", sk_macro_f1)):
        ours = bootstrap_ci(y_true, y_pred, 5, name, n_resamples=999, seed=42)
        direct = stats.bootstrap((y_true, y_pred), reference, n_resamples=999, vectorized=False,
                                 paired=True, method="BCa", rng=np.random.default_rng(42))
        assert ours.value == pytest.approx(reference(y_true, y_pred), abs=1e-12)
        assert ours.low == pytest.approx(direct.confidence_interval.low, abs=1e-9)
        assert ours.high == pytest.approx(direct.confidence_interval.high, abs=1e-9)
        assert ours.low < ours.value < ours.high
        assert not ours.degenerate and ours.method == "BCa" and ours.n_resamples == 999


def test_bootstrap_in_batches_equals_one_unbatched_call(monkeypatch):
    """Resamples come in batches of about BATCH_ELEMENTS values (bounded memory at any n); the interval is the
    one scipy gives without batches, to the last bit."""
    import leukoreport.stats.intervals as intervals

    rng = np.random.default_rng(8)
    y_true, y_pred = noisy_predictions(rng, 600, 5)
    assert intervals.bootstrap_batch(600) == intervals.BATCH_ELEMENTS // 600
    monkeypatch.setattr(intervals, "BATCH_ELEMENTS", 600 * 7)
    seen = []
    real = stats.bootstrap
    monkeypatch.setattr(intervals.stats, "bootstrap", lambda *a, **k: seen.append(k["batch"]) or real(*a, **k))
    for name, reference in (("balanced_accuracy", sk_balanced_accuracy), ("macro_f1", sk_macro_f1)):
        ours = bootstrap_ci(y_true, y_pred, 5, name, n_resamples=999, seed=11)
        func = intervals._STATISTICS[name]

        def vectorised(t, p, axis=-1, func=func):
            return func(np.moveaxis(t, axis, -1), np.moveaxis(p, axis, -1), 5)

        whole = real((y_true, y_pred), vectorised, n_resamples=999, vectorized=True, paired=True, method="BCa",
                     rng=np.random.default_rng(11))
        assert (ours.low, ours.high) == (whole.confidence_interval.low, whole.confidence_interval.high)
        assert ours.low == pytest.approx(real((y_true, y_pred), reference, n_resamples=999, vectorized=False,
                                              paired=True, method="BCa",
                                              rng=np.random.default_rng(11)).confidence_interval.low, abs=1e-9)
    assert seen == [7, 7]


def test_bootstrap_confidence_level_is_passed_on():
    rng = np.random.default_rng(6)
    y_true, y_pred = noisy_predictions(rng, 60, 3)
    narrow = bootstrap_ci(y_true, y_pred, 3, "macro_f1", confidence=0.8, n_resamples=999)
    wide = bootstrap_ci(y_true, y_pred, 3, "macro_f1", confidence=0.99, n_resamples=999)
    direct = stats.bootstrap((y_true, y_pred), sk_macro_f1, n_resamples=999, paired=True,
                             confidence_level=0.8, method="BCa", rng=np.random.default_rng(0))
    assert (narrow.low, narrow.high) == pytest.approx(tuple(direct.confidence_interval), abs=1e-9)
    assert wide.low < narrow.low < narrow.high < wide.high
    assert narrow.confidence == 0.8


def test_bootstrap_is_reproducible_for_a_seed():
    rng = np.random.default_rng(8)
    y_true, y_pred = noisy_predictions(rng, 100, 5)
    first = bootstrap_ci(y_true, y_pred, 5, "balanced_accuracy", n_resamples=999, seed=3)
    second = bootstrap_ci(y_true, y_pred, 5, "balanced_accuracy", n_resamples=999, seed=3)
    other = bootstrap_ci(y_true, y_pred, 5, "balanced_accuracy", n_resamples=999, seed=4)
    assert first == second
    assert (first.low, first.high) != (other.low, other.high)


def test_bootstrap_degenerate_case_returns_none_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = bootstrap_ci([2] * 9, [2] * 9, 5, "balanced_accuracy", n_resamples=999)
        single = bootstrap_ci([1], [0], 2, "macro_f1")
    assert result == BootstrapCI(value=1.0, low=None, high=None, confidence=0.95, n_resamples=999,
                                 method="BCa", degenerate=True)
    assert single.value == 0.0 and single.degenerate and single.low is None


def test_bootstrap_to_dict_is_plain_json():
    rng = np.random.default_rng(9)
    y_true, y_pred = noisy_predictions(rng, 50, 3)
    result = bootstrap_ci(np.int32(y_true), np.int32(y_pred), 3, "macro_f1", n_resamples=199)
    data = result.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert set(data) == {"value", "low", "high", "confidence", "n_resamples", "method", "degenerate"}
    assert all(type(data[key]) is float for key in ("value", "low", "high", "confidence"))
    assert type(data["n_resamples"]) is int and type(data["degenerate"]) is bool
    degenerate = bootstrap_ci([0, 0], [0, 0], 1, "macro_f1", n_resamples=99).to_dict()
    assert json.dumps(degenerate) == ('{"value": 1.0, "low": null, "high": null, "confidence": 0.95, '
                                      '"n_resamples": 99, "method": "BCa", "degenerate": true}')


@pytest.mark.parametrize("kwargs, pattern", [
    ({"statistic": "accuracy"}, r"statistic = 'accuracy' is not one of"),
    ({"y_pred": [0, 1]}, r"y_true has shape \(3,\) but y_pred has shape \(2,\)"),
    ({"y_true": [], "y_pred": []}, r"empty"),
    ({"y_pred": [0, 1, 3]}, r"y_pred has labels outside 0\.\.2: \[3\]"),
    ({"y_true": [[0, 1, 2]], "y_pred": [[0, 1, 2]]}, r"must be 1-d"),
    ({"n_resamples": 0}, r"n_resamples = 0"),
    ({"confidence": 1.5}, r"confidence = 1.5"),
])
def test_bootstrap_errors(kwargs, pattern):
    arguments = {"y_true": [0, 1, 2], "y_pred": [0, 1, 1], "n_classes": 3, "statistic": "macro_f1"}
    arguments.update(kwargs)
    with pytest.raises(LeukoError, match=pattern):
        bootstrap_ci(**arguments)
