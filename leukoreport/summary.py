"""Tables over all seeds and datasets, built from the metrics.json files the evaluate rule wrote."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from leukoreport.errors import LeukoError
from leukoreport.intervals import newcombe_difference

METRIC_COLUMNS = [
    "seed", "dataset", "n", "n_correct", "classes_present",
    "accuracy", "accuracy_low", "accuracy_high",
    "balanced_accuracy", "balanced_accuracy_low", "balanced_accuracy_high",
    "macro_f1", "macro_f1_low", "macro_f1_high",
    "ece", "brier", "log_loss", "mean_loss", "confidence_level",
]
GAP_COLUMNS = [
    "seed", "dataset", "n", "n_correct", "accuracy", "accuracy_low", "accuracy_high",
    "test_n", "test_n_correct", "test_accuracy", "test_accuracy_low", "test_accuracy_high",
    "gap", "gap_low", "gap_high", "confidence_level",
]


def read_metrics(path: str | Path) -> dict:
    """One metrics.json; LeukoError naming the file if it is missing, not JSON or lacks a key."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LeukoError(f"{path.as_posix()}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LeukoError(f"{path.as_posix()}: not valid JSON ({exc})") from None
    for key in ("seed", "dataset", "n", "n_correct", "accuracy", "balanced_accuracy", "macro_f1",
                "intervals", "calibration", "classes_present", "confidence_level"):
        if not isinstance(data, dict) or key not in data:
            raise LeukoError(f"{path.as_posix()}: missing key '{key}'")
    return data


def metrics_row(metrics: dict) -> dict:
    """The flat row of metrics.csv for one seed and dataset."""
    iv, cal = metrics["intervals"], metrics["calibration"]
    row = {"seed": int(metrics["seed"]), "dataset": metrics["dataset"], "n": metrics["n"],
           "n_correct": metrics["n_correct"], "classes_present": " ".join(metrics["classes_present"])}
    for key in ("accuracy", "balanced_accuracy", "macro_f1"):
        row[key] = metrics[key]
        row[f"{key}_low"] = iv[key]["low"]
        row[f"{key}_high"] = iv[key]["high"]
    row.update({"ece": cal["ece"], "brier": cal["brier"], "log_loss": cal["log_loss"],
                "mean_loss": metrics.get("mean_loss"), "confidence_level": metrics["confidence_level"]})
    return row


def metrics_table(all_metrics: list[dict]) -> pd.DataFrame:
    """metrics.csv: one row per seed and dataset, in the given order."""
    if not all_metrics:
        raise LeukoError("metrics table: no metrics.json files given")
    return pd.DataFrame([metrics_row(m) for m in all_metrics], columns=METRIC_COLUMNS)


def external_gaps(table: pd.DataFrame) -> pd.DataFrame:
    """external.csv: per seed and external set, accuracy minus the same seed's test accuracy,
    with a Newcombe hybrid-score interval."""
    rows = []
    for seed, group in table.groupby("seed", sort=False):
        test = group[group["dataset"] == "test"]
        if len(test) != 1:
            raise LeukoError(f"metrics table: seed {seed} has {len(test)} rows for dataset 'test' (expected 1)")
        t = test.iloc[0]
        for _, e in group[group["dataset"] != "test"].iterrows():
            conf = float(e["confidence_level"])
            low, high = newcombe_difference(int(e["n_correct"]), int(e["n"]), int(t["n_correct"]), int(t["n"]), conf)
            rows.append({"seed": int(seed), "dataset": e["dataset"], "n": int(e["n"]),
                         "n_correct": int(e["n_correct"]), "accuracy": e["accuracy"],
                         "accuracy_low": e["accuracy_low"], "accuracy_high": e["accuracy_high"],
                         "test_n": int(t["n"]), "test_n_correct": int(t["n_correct"]),
                         "test_accuracy": t["accuracy"], "test_accuracy_low": t["accuracy_low"],
                         "test_accuracy_high": t["accuracy_high"],
                         "gap": e["accuracy"] - t["accuracy"], "gap_low": low, "gap_high": high,
                         "confidence_level": conf})
    return pd.DataFrame(rows, columns=GAP_COLUMNS)


def summed_confusion(all_metrics: list[dict], dataset: str) -> dict:
    """A metrics-like dict whose confusion matrix is the sum over seeds for one dataset."""
    chosen = [m for m in all_metrics if m["dataset"] == dataset]
    if not chosen:
        raise LeukoError(f"summed confusion: no metrics for dataset '{dataset}'")
    labels = chosen[0]["confusion_matrix"]["labels"]
    total = [[0] * len(labels) for _ in labels]
    for m in chosen:
        if m["confusion_matrix"]["labels"] != labels:
            raise LeukoError(f"summed confusion: seed {m['seed']} has labels {m['confusion_matrix']['labels']}, "
                             f"expected {labels}")
        for i, row in enumerate(m["confusion_matrix"]["matrix"]):
            for j, v in enumerate(row):
                total[i][j] += int(v)
    n = sum(map(sum, total))
    n_correct = sum(total[i][i] for i in range(len(labels)))
    per_class = {c: {"present": sum(total[i]) > 0, "support": sum(total[i])} for i, c in enumerate(labels)}
    return {"dataset": dataset, "seed": ", ".join(str(m["seed"]) for m in chosen), "n": n,
            "n_correct": n_correct, "accuracy": n_correct / n if n else None, "per_class": per_class,
            "confusion_matrix": {"labels": labels, "matrix": total}, "n_seeds": len(chosen)}
