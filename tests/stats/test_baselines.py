"""Majority and training-prior baselines, and the paired interval of the gain, against hand counts."""

from __future__ import annotations

import numpy as np
import pytest

from leukoreport.base.errors import LeukoError
from leukoreport.stats.baselines import baselines, majority_class, paired_gain_interval, prior_accuracy

CLASSES = ["basophil", "eosinophil", "lymphocyte", "monocyte", "neutrophil"]


def test_majority_baseline_equals_a_hand_count():
    # 59 neutrophils in 100: "always neutrophil" scores 59%; a model scoring 5.7%-like is far below it
    labels = ["neutrophil"] * 59 + ["lymphocyte"] * 21 + ["monocyte"] * 20
    preds = ["basophil"] * 94 + ["neutrophil"] * 6  # only the last 6 (monocytes) predicted neutrophil: all wrong
    out = baselines(labels, preds, CLASSES * 10, CLASSES, n_resamples=2000)
    assert out["majority_class"] == "neutrophil"
    assert out["majority_accuracy"] == 59 / 100
    assert out["gain"] == pytest.approx(0 / 100 - 59 / 100)
    assert out["gain_low"] <= out["gain"] <= out["gain_high"] < 0
    # uniform training prior: guessing at random is right 1/5 of the time whatever the set
    assert out["prior_accuracy"] == pytest.approx(0.2)


def test_prior_accuracy_is_the_sum_of_products():
    train = ["a"] * 6 + ["b"] * 3 + ["c"] * 1
    labels = ["a"] * 2 + ["c"] * 8
    assert prior_accuracy(labels, train) == pytest.approx(0.6 * 0.2 + 0.1 * 0.8)


def test_majority_ties_follow_class_order():
    assert majority_class(["monocyte", "basophil"], CLASSES) == "basophil"
    with pytest.raises(LeukoError, match="no images"):
        majority_class([], CLASSES)


def test_gain_interval_equals_a_direct_resampling_loop():
    rng = np.random.default_rng(3)
    a = (rng.random(57) < 0.7).astype(float)
    b = (rng.random(57) < 0.5).astype(float)
    low, high = paired_gain_interval(a, b, 0.9, n_resamples=700, seed=11)
    draw = np.random.default_rng(11)
    means = []
    for start in range(0, 700, 500):  # the same draws, chunk by chunk, then one resample at a time
        idx = draw.integers(0, 57, size=(min(500, 700 - start), 57))
        means += [float(np.mean([a[i] - b[i] for i in row])) for row in idx]
    assert (low, high) == pytest.approx(tuple(np.quantile(means, [0.05, 0.95])), abs=1e-12)


def test_identical_model_and_baseline_give_a_zero_interval():
    labels = ["monocyte"] * 9
    out = baselines(labels, labels, CLASSES, CLASSES, n_resamples=500)
    assert out["majority_accuracy"] == 1.0 and (out["gain"], out["gain_low"], out["gain_high"]) == (0, 0, 0)
    with pytest.raises(LeukoError, match="9 labels but 2 predictions"):
        baselines(labels, labels[:2], CLASSES, CLASSES)
