"""Accuracy a model must beat on a dataset: always the commonest class, or guessing from the training prior."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from leukoreport.base.errors import LeukoError

__all__ = ["CHUNK", "add_baselines", "baselines", "majority_class", "paired_gain_interval", "prior_accuracy"]

CHUNK = 500  # bootstrap resamples drawn at once (memory: CHUNK x n indices)


def majority_class(labels: Sequence[str], classes: Sequence[str]) -> str:
    """The commonest label of a dataset; ties go to the class that comes first in ``classes``."""
    if len(labels) == 0:
        raise LeukoError("baselines: the dataset has no images")
    counts = Counter(str(x) for x in labels)
    order = {c: i for i, c in enumerate(classes)}
    return min(counts, key=lambda c: (-counts[c], order.get(c, len(order)), c))


def prior_accuracy(labels: Sequence[str], train_labels: Sequence[str]) -> float:
    """Expected accuracy of guessing at random with the training class frequencies: sum_c p_train(c) p_set(c)."""
    if len(train_labels) == 0:
        raise LeukoError("baselines: no training labels given")
    train = Counter(str(x) for x in train_labels)
    here = Counter(str(x) for x in labels)
    n_train, n = sum(train.values()), sum(here.values())
    return float(sum(train[c] / n_train * k / n for c, k in here.items()))


def paired_gain_interval(correct: np.ndarray, baseline_correct: np.ndarray, confidence: float = 0.95,
                         n_resamples: int = 9999, seed: int = 0) -> tuple[float, float]:
    """Percentile interval of mean(correct) - mean(baseline_correct) over images resampled together (paired)."""
    a = np.asarray(correct, dtype=float)
    b = np.asarray(baseline_correct, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise LeukoError(f"baselines: need two equal non-empty vectors, got shapes {a.shape} and {b.shape}")
    diff = a - b
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    for start in range(0, n_resamples, CHUNK):
        size = min(CHUNK, n_resamples - start)
        idx = rng.integers(0, diff.size, size=(size, diff.size))
        means[start:start + size] = diff[idx].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


def baselines(labels: Sequence[str], predictions: Sequence[str], train_labels: Sequence[str],
              classes: Sequence[str], confidence: float = 0.95, n_resamples: int = 9999, seed: int = 0) -> dict:
    """The ``baselines`` entry of metrics.json: majority and training-prior accuracy, and the gain over majority."""
    labels = [str(x) for x in labels]
    predictions = [str(x) for x in predictions]
    if len(labels) != len(predictions):
        raise LeukoError(f"baselines: {len(labels)} labels but {len(predictions)} predictions")
    majority = majority_class(labels, classes)
    correct = np.array([p == t for p, t in zip(predictions, labels)], dtype=float)
    base = np.array([t == majority for t in labels], dtype=float)
    low, high = paired_gain_interval(correct, base, confidence, n_resamples, seed)
    return {
        "majority_class": majority,
        "majority_accuracy": float(base.mean()),
        "prior_accuracy": prior_accuracy(labels, train_labels),
        "gain": float(correct.mean() - base.mean()),
        "gain_low": low,
        "gain_high": high,
        "method": f"paired percentile bootstrap over images, {n_resamples} resamples, seed {seed}",
    }


def add_baselines(metrics: dict, pred, train_labels: Sequence[str], uncertainty) -> dict:
    """``metrics`` (a metrics.json dict) with its ``baselines`` entry computed from ``pred`` and the training labels."""
    metrics["baselines"] = baselines(pred["label"], pred["prediction"], train_labels, metrics["classes"],
                                     uncertainty.confidence, uncertainty.n_resamples, uncertainty.bootstrap_seed)
    return metrics
