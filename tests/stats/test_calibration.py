"""Tests of leukoreport.stats.calibration against hand-worked values, plain loops and scikit-learn."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss
from sklearn.metrics import log_loss as sk_log_loss

from leukoreport.base.errors import LeukoError
from leukoreport.stats.calibration import (
    Calibration,
    brier_score,
    calibration,
    expected_calibration_error,
    log_loss,
    reliability_table,
)

# Five images, three classes, three bins (0, 1/3], (1/3, 2/3], (2/3, 1].
HAND_PROBS = np.array([
    [0.5, 0.3, 0.2],   # label 0: confidence 0.5 -> bin 1, correct
    [0.6, 0.2, 0.2],   # label 1: confidence 0.6 -> bin 1, wrong
    [0.1, 0.9, 0.0],   # label 1: confidence 0.9 -> bin 2, correct
    [0.2, 0.0, 0.8],   # label 2: confidence 0.8 -> bin 2, correct
    [0.0, 0.3, 0.7],   # label 0: confidence 0.7 -> bin 2, wrong
])
HAND_LABELS = np.array([0, 1, 1, 2, 0])


def random_predictions(rng, n, k, concentration=1.0):
    """Dirichlet probabilities and labels that agree with the argmax about half of the time."""
    probs = rng.dirichlet(np.full(k, concentration), n)
    labels = np.where(rng.random(n) < 0.5, probs.argmax(axis=1), rng.integers(0, k, n))
    return probs, labels


def ece_by_loop(probs, labels, n_bins):
    """Plain-Python ECE: bins (b/n_bins, (b+1)/n_bins], confidence 0 in the first bin."""
    members = [[] for _ in range(n_bins)]
    for row, label in zip(probs.tolist(), labels.tolist()):
        confidence = max(row)
        predicted = row.index(confidence)
        b = 0
        while b < n_bins - 1 and not confidence <= (b + 1) / n_bins:
            b += 1
        members[b].append((confidence, predicted == label))
    total = 0.0
    for items in members:
        if items:
            mean_confidence = sum(c for c, _ in items) / len(items)
            accuracy = sum(ok for _, ok in items) / len(items)
            total += len(items) / len(labels) * abs(accuracy - mean_confidence)
    return total


def test_reliability_table_by_hand():
    table = reliability_table(HAND_PROBS, HAND_LABELS, n_bins=3)
    assert list(table.columns) == ["bin", "lower", "upper", "count", "confidence", "accuracy", "gap"]
    assert table["bin"].tolist() == [0, 1, 2]
    assert table["lower"].tolist() == pytest.approx([0, 1 / 3, 2 / 3])
    assert table["upper"].tolist() == pytest.approx([1 / 3, 2 / 3, 1])
    assert table["count"].tolist() == [0, 2, 3]
    assert math.isnan(table.loc[0, "confidence"]) and math.isnan(table.loc[0, "accuracy"])
    assert math.isnan(table.loc[0, "gap"])
    # Bin 1: confidence (0.5 + 0.6) / 2 = 0.55, accuracy 1/2, gap -0.05.
    # Bin 2: confidence (0.9 + 0.8 + 0.7) / 3 = 0.8, accuracy 2/3, gap -2/15.
    assert table.loc[1, ["confidence", "accuracy", "gap"]].tolist() == pytest.approx([0.55, 0.5, -0.05])
    assert table.loc[2, ["confidence", "accuracy", "gap"]].tolist() == pytest.approx([0.8, 2 / 3, -2 / 15])


def test_ece_by_hand():
    # ECE = 2/5 * 0.05 + 3/5 * 2/15 = 0.02 + 0.08 = 0.10.
    assert expected_calibration_error(HAND_PROBS, HAND_LABELS, n_bins=3) == pytest.approx(0.10, abs=1e-12)
    # One bin: confidence 3.5/5 = 0.7, accuracy 3/5 -> ECE 0.1 as well; two bins (0, .5], (.5, 1]:
    # bin 0 holds 0.5 (correct): |1 - 0.5| = 0.5; bin 1 holds 0.6, 0.9, 0.8, 0.7 with 2 correct:
    # |0.5 - 0.75| = 0.25 -> ECE = 1/5 * 0.5 + 4/5 * 0.25 = 0.3.
    assert expected_calibration_error(HAND_PROBS, HAND_LABELS, n_bins=1) == pytest.approx(0.10, abs=1e-12)
    assert expected_calibration_error(HAND_PROBS, HAND_LABELS, n_bins=2) == pytest.approx(0.30, abs=1e-12)


@pytest.mark.parametrize("seed, n_bins", [(0, 15), (1, 10), (2, 7), (3, 1), (4, 40)])
def test_ece_agrees_with_a_plain_loop(seed, n_bins):
    rng = np.random.default_rng(seed)
    probs, labels = random_predictions(rng, 500, 5, concentration=0.5)
    assert expected_calibration_error(probs, labels, n_bins) == pytest.approx(
        ece_by_loop(probs, labels, n_bins), abs=1e-12)


def test_reliability_table_counts_agree_with_a_plain_loop():
    rng = np.random.default_rng(12)
    probs, labels = random_predictions(rng, 300, 4)
    table = reliability_table(probs, labels)
    expected = [0] * 15
    for confidence in probs.max(axis=1):
        expected[next(b for b in range(15) if confidence <= (b + 1) / 15)] += 1
    assert table["count"].tolist() == expected
    assert table["count"].sum() == 300
    assert len(table) == 15


def test_perfectly_calibrated_data_has_small_ece():
    rng = np.random.default_rng(2017)
    n, k = 200_000, 5
    probs = rng.dirichlet(np.full(k, 0.7), n)
    # Draw each label from its own probability row: the model is calibrated by construction.
    labels = (rng.random(n)[:, None] > np.cumsum(probs, axis=1)).sum(axis=1).clip(max=k - 1)
    assert expected_calibration_error(probs, labels) < 0.01
    # An overconfident model (probabilities sharpened, labels unchanged) is far from calibrated.
    sharp = probs ** 3 / (probs ** 3).sum(axis=1, keepdims=True)
    assert expected_calibration_error(sharp, labels) > 0.05


def test_boundary_confidences_land_in_the_right_bin():
    k = 15
    uniform = np.full(k, 1 / 15)                 # confidence exactly 1/15: upper edge of bin 0
    just_above = uniform.copy()
    just_above[0] = np.nextafter(1 / 15, 1)      # a hair above 1/15: bin 1
    fifth = np.r_[np.full(5, 0.2), np.zeros(10)]  # confidence 0.2 = 3/15: upper edge of bin 2
    half = np.r_[0.5, 0.5, np.zeros(13)]          # 0.5 lies inside (7/15, 8/15]: bin 7
    one = np.r_[1.0, np.zeros(14)]                # confidence 1.0: last bin
    probs = np.vstack([uniform, just_above, fifth, half, one])
    table = reliability_table(probs, np.zeros(5, dtype=int))
    counts = table["count"].to_numpy()
    assert np.flatnonzero(counts).tolist() == [0, 1, 2, 7, 14]
    assert counts[[0, 1, 2, 7, 14]].tolist() == [1, 1, 1, 1, 1]
    assert table.loc[14, "confidence"] == 1.0 and table.loc[14, "accuracy"] == 1.0


def test_brier_by_hand_and_against_sklearn():
    # Row sums of (p - onehot)²: 0.38, 1.04, 0.02, 0.08, 1.58 -> mean 3.1 / 5 = 0.62.
    assert brier_score(HAND_PROBS, HAND_LABELS) == pytest.approx(0.62, abs=1e-12)
    rng = np.random.default_rng(4)
    for k in (2, 3, 5):
        probs, labels = random_predictions(rng, 200, k)
        expected = brier_score_loss(labels, probs, labels=list(range(k)), scale_by_half=False)
        assert brier_score(probs, labels) == pytest.approx(expected, abs=1e-12)
    # Labels not covering every class still use all K columns.
    probs, labels = random_predictions(rng, 50, 4)
    labels = np.where(labels == 3, 0, labels)
    expected = brier_score_loss(labels, probs, labels=list(range(4)), scale_by_half=False)
    assert brier_score(probs, labels) == pytest.approx(expected, abs=1e-12)
    # Range 0..2: perfect and maximally wrong one-hot predictions.
    assert brier_score(np.eye(3), [0, 1, 2]) == 0.0
    assert brier_score(np.eye(3), [1, 2, 0]) == 2.0


def test_log_loss_by_hand_and_against_sklearn():
    # -ln 0.5, -ln 0.2, -ln 0.9, -ln 0.8 and -ln(1e-15) for the true-class probability 0.
    expected = (math.log(2) + math.log(5) - math.log(0.9) - math.log(0.8) + 15 * math.log(10)) / 5
    assert log_loss(HAND_PROBS, HAND_LABELS) == pytest.approx(expected, abs=1e-12)
    assert log_loss(HAND_PROBS, HAND_LABELS, eps=1e-3) == pytest.approx(
        expected - 15 * math.log(10) / 5 + 3 * math.log(10) / 5, abs=1e-12)
    rng = np.random.default_rng(5)
    for k in (2, 3, 5):
        probs, labels = random_predictions(rng, 200, k, concentration=2.0)
        assert log_loss(probs, labels) == pytest.approx(
            sk_log_loss(labels, probs, labels=list(range(k))), abs=1e-12)


def test_calibration_collects_everything_and_serialises():
    result = calibration(HAND_PROBS, HAND_LABELS, n_bins=3)
    assert isinstance(result, Calibration)
    assert result.ece == pytest.approx(0.10, abs=1e-12)
    assert result.brier == pytest.approx(0.62, abs=1e-12)
    assert result.log_loss == pytest.approx(log_loss(HAND_PROBS, HAND_LABELS), abs=1e-15)
    assert result.n_bins == 3 and len(result.bins) == 3
    data = result.to_dict()
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    assert data["bins"][0] == {"bin": 0, "lower": 0.0, "upper": pytest.approx(1 / 3), "count": 0,
                               "confidence": None, "accuracy": None, "gap": None}
    assert data["bins"][2]["count"] == 3 and type(data["bins"][2]["count"]) is int
    assert data["bins"][2]["accuracy"] == pytest.approx(2 / 3)
    rng = np.random.default_rng(6)
    probs, labels = random_predictions(rng, 400, 5)
    full = calibration(probs, labels)
    assert full.ece == pytest.approx(ece_by_loop(probs, labels, 15), abs=1e-12)
    assert full.brier == pytest.approx(brier_score_loss(labels, probs, labels=list(range(5)),
                                                        scale_by_half=False), abs=1e-12)


@pytest.mark.parametrize("func", [reliability_table, expected_calibration_error, brier_score, log_loss,
                                  calibration])
def test_argument_checks(func):
    probs = np.array([[0.7, 0.3], [0.4, 0.6]])
    name = func.__name__
    with pytest.raises(LeukoError, match=rf"^{name}: labels has shape \(3,\) but probs has 2 rows$"):
        func(probs, [0, 1, 1])
    with pytest.raises(LeukoError, match=rf"^{name}: probs row 1 sums to 0.9, not 1"):
        func(np.array([[0.7, 0.3], [0.4, 0.5]]), [0, 1])
    with pytest.raises(LeukoError, match=r"labels outside 0\.\.1: \[2\]"):
        func(probs, [0, 2])
    with pytest.raises(LeukoError, match=r"labels outside 0\.\.1: \[-1\]"):
        func(probs, [-1, 0])
    with pytest.raises(LeukoError, match="empty"):
        func(np.zeros((0, 3)), [])
    with pytest.raises(LeukoError, match="2-d"):
        func([0.5, 0.5], [0, 1])
    with pytest.raises(LeukoError, match="negative"):
        func(np.array([[1.2, -0.2], [0.4, 0.6]]), [0, 1])
    with pytest.raises(LeukoError, match="integer class indices"):
        func(probs, ["a", "b"])


@pytest.mark.parametrize("func", [reliability_table, expected_calibration_error, calibration])
def test_n_bins_must_be_positive(func):
    with pytest.raises(LeukoError, match=r"n_bins = 0 is not a positive integer"):
        func(HAND_PROBS, HAND_LABELS, n_bins=0)
    with pytest.raises(LeukoError, match=r"n_bins = 2.5"):
        func(HAND_PROBS, HAND_LABELS, n_bins=2.5)
