"""Which runs the printed report details: the median and the worst run on the test split's accuracy."""

from __future__ import annotations

import math

from leukoreport.base.errors import LeukoError

__all__ = ["PRINTED_RUNS_RULE", "median_run", "printed_runs"]

PRINTED_RUNS_RULE = ("the runs sorted by their test-split accuracy, lowest first (ties in run order): the worst run "
                     "(first) and the median run (at position ⌊n/2⌋ + 1 of n, the upper median); one run when they "
                     "coincide")


def _order(accuracies: list[float]) -> list[int]:
    """Run indices by ascending accuracy, ties in run order."""
    if not accuracies:
        raise LeukoError("printed runs: no runs to choose from")
    values = [float(a) for a in accuracies]
    if any(math.isnan(v) for v in values):
        raise LeukoError("printed runs: a run has no test accuracy")
    return sorted(range(len(values)), key=lambda i: (values[i], i))


def median_run(accuracies: list[float]) -> int:
    """Index of the median run by PRINTED_RUNS_RULE (position ⌊n/2⌋ + 1 of n by ascending accuracy, ties in run
    order)."""
    order = _order(accuracies)
    return order[len(order) // 2]


def printed_runs(accuracies: list[float]) -> list[int]:
    """Indices (into `accuracies`, one test accuracy per run in run order) of the runs whose own sections the PDF
    keeps, by PRINTED_RUNS_RULE: the worst and the median run, one index when they coincide (n = 1). In run
    order."""
    order = _order(accuracies)
    return sorted({order[0], order[len(order) // 2]})
