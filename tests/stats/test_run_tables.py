"""metrics.csv, external.csv and the summed confusion matrix, checked against independent computations."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from leukoreport.base.errors import LeukoError
from leukoreport.stats.run_tables import external_gaps, metrics_table, read_metrics, summed_confusion

Z = 1.959963984540054


def wilson_by_hand(k: int, n: int) -> tuple[float, float]:
    centre = (k + Z * Z / 2) / (n + Z * Z)
    half = Z * math.sqrt(k * (n - k) / n + Z * Z / 4) / (n + Z * Z)
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_by_hand(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float]:
    """Newcombe (1998) method 10, written out from the paper."""
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_by_hand(k1, n1)
    l2, u2 = wilson_by_hand(k2, n2)
    d = p1 - p2
    return (d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2))


@pytest.fixture
def all_metrics(fake_metrics):
    return [fake_metrics(1, "test", 18, 20), fake_metrics(1, "ext", 7, 9),
            fake_metrics(2, "test", 20, 20), fake_metrics(2, "ext", 9, 9)]


def test_metrics_table_rows_equal_metrics_json(all_metrics):
    table = metrics_table(all_metrics)
    assert list(zip(table["seed"], table["dataset"])) == [(1, "test"), (1, "ext"), (2, "test"), (2, "ext")]
    row = table.iloc[1]
    assert (row["n"], row["n_correct"], row["accuracy"]) == (9, 7, pytest.approx(7 / 9))
    assert (row["accuracy_low"], row["accuracy_high"]) == pytest.approx(wilson_by_hand(7, 9))
    assert row["ece"] == pytest.approx(all_metrics[1]["calibration"]["ece"])
    assert row["classes_present"] == "a"


def test_external_gap_is_newcombe_interval_of_the_difference(all_metrics):
    gaps = external_gaps(metrics_table(all_metrics))
    assert list(zip(gaps["seed"], gaps["dataset"])) == [(1, "ext"), (2, "ext")]
    first = gaps.iloc[0]
    assert first["gap"] == pytest.approx(7 / 9 - 18 / 20)
    assert (first["gap_low"], first["gap_high"]) == pytest.approx(newcombe_by_hand(7, 9, 18, 20), abs=1e-9)
    second = gaps.iloc[1]  # 9/9 vs 20/20: gap 0, interval around 0
    assert second["gap"] == 0.0 and second["gap_low"] < 0 < second["gap_high"]
    assert (second["gap_low"], second["gap_high"]) == pytest.approx(newcombe_by_hand(9, 9, 20, 20), abs=1e-9)
    assert (second["test_n"], second["test_n_correct"]) == (20, 20)


def test_no_external_sets_gives_empty_gap_table(all_metrics):
    gaps = external_gaps(metrics_table([m for m in all_metrics if m["dataset"] == "test"]))
    assert gaps.empty and "gap_low" in gaps.columns


def test_gap_without_test_row_is_an_error(all_metrics):
    with pytest.raises(LeukoError, match="split seed 42, seed 1 has 0 rows for dataset 'test'"):
        external_gaps(metrics_table([all_metrics[1]]))


def test_summed_confusion_adds_the_seeds(all_metrics):
    summed = summed_confusion(all_metrics, "test")
    expected = [[sum(m["confusion_matrix"]["matrix"][i][j] for m in all_metrics if m["dataset"] == "test")
                 for j in range(3)] for i in range(3)]
    assert summed["confusion_matrix"]["matrix"] == expected
    assert (summed["n"], summed["n_correct"], summed["n_seeds"]) == (40, 38, 2)
    assert summed["per_class"]["b"]["present"] is False


def test_read_metrics_names_the_file(tmp_path, all_metrics):
    good = tmp_path / "metrics.json"
    good.write_text(json.dumps(all_metrics[0]))
    assert read_metrics(good)["n"] == 20
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(LeukoError, match="bad.json: not valid JSON"):
        read_metrics(bad)
    old = tmp_path / "old.json"
    old.write_text(json.dumps({k: v for k, v in all_metrics[0].items() if k != "intervals"}))
    with pytest.raises(LeukoError, match="old.json: missing key 'intervals'"):
        read_metrics(old)
    with pytest.raises(LeukoError, match="missing.json: file not found"):
        read_metrics(tmp_path / "missing.json")
    with pytest.raises(LeukoError, match="no metrics.json"):
        metrics_table([])
    assert isinstance(metrics_table(all_metrics), pd.DataFrame)
