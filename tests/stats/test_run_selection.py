"""Tests for leukoreport.stats.run_selection: which runs the printed report details."""

from __future__ import annotations

import itertools
import math

import pytest

from leukoreport.base.errors import LeukoError
from leukoreport.stats.run_selection import PRINTED_RUNS_RULE, median_run, printed_runs


def _by_rule(values: list[float]) -> tuple[int, int]:
    """Independent reading of the rule: rank by (accuracy, run order), worst = rank 1, median = rank ⌊n/2⌋ + 1."""
    ranked = [i for _, i in sorted(zip(values, range(len(values))))]
    return ranked[0], ranked[math.floor(len(values) / 2)]


@pytest.mark.parametrize(("values", "expected"), [
    ([0.9], [0]),
    ([0.7, 0.5], [0, 1]),  # worst run 1, upper median run 0
    ([0.9, 0.8, 0.85], [1, 2]),
    ([0.8, 0.8, 0.8], [0, 1]),  # ties in run order
    ([0.6, 0.9, 0.7, 0.8], [0, 3]),
])
def test_printed_runs_examples(values, expected):
    assert printed_runs(values) == expected
    assert median_run(values) in expected


def test_printed_runs_matches_rule_on_every_order():
    for values in itertools.product([0.5, 0.6, 0.6, 0.9], repeat=3):
        worst, median = _by_rule(list(values))
        assert printed_runs(list(values)) == sorted({worst, median})
        assert median_run(list(values)) == median
    assert "worst" in PRINTED_RUNS_RULE and "median" in PRINTED_RUNS_RULE


def test_printed_runs_refuses_empty_and_missing():
    with pytest.raises(LeukoError, match="no runs"):
        printed_runs([])
    with pytest.raises(LeukoError, match="no test accuracy"):
        printed_runs([0.5, float("nan")])
