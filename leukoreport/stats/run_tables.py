"""Tables over all seeds and datasets, built from the metrics.json files the evaluate rule wrote."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from leukoreport.base.atomic_io import read_json
from leukoreport.base.errors import LeukoError
from leukoreport.stats.intervals import newcombe_difference

__all__ = ["GAP_COLUMNS", "METRIC_COLUMNS", "RunKey", "external_gaps", "metrics_row", "metrics_table", "read_metrics",
           "run_folder", "run_keys", "run_label", "summed_confusion"]

METRIC_COLUMNS = [
    "split_seed", "seed", "dataset", "n", "n_correct", "classes_present",
    "accuracy", "accuracy_low", "accuracy_high",
    "majority_class", "majority_accuracy", "prior_accuracy", "gain", "gain_low", "gain_high",
    "balanced_accuracy", "balanced_accuracy_low", "balanced_accuracy_high",
    "macro_f1", "macro_f1_low", "macro_f1_high",
    "ece", "brier", "log_loss", "mean_loss", "confidence_level", "predictions",
]
GAP_COLUMNS = [
    "split_seed", "seed", "dataset", "n", "n_correct", "accuracy", "accuracy_low", "accuracy_high",
    "test_n", "test_n_correct", "test_accuracy", "test_accuracy_low", "test_accuracy_high",
    "gap", "gap_low", "gap_high", "confidence_level",
]


@dataclass(frozen=True)
class RunKey:
    """One trained model: a split seed and a training seed, with its display label."""

    split_seed: int
    seed: int
    label: str


def run_label(split_seed: int, seed: int, n_splits: int) -> str:
    """'seed 1', or 'split 42 · seed 1' when the run has several split seeds."""
    return f"seed {seed}" if n_splits == 1 else f"split {split_seed} · seed {seed}"


def run_keys(split_seeds: list[int], seeds: list[int]) -> list[RunKey]:
    """Every (split seed, seed) run, split seeds outermost, in config order."""
    splits = [int(s) for s in split_seeds]
    return [RunKey(sp, int(s), run_label(sp, int(s), len(splits))) for sp in splits for s in seeds]


def run_folder(results_dir: str | Path, key: RunKey) -> Path:
    """results/splits/{split_seed}/seeds/{seed}."""
    return Path(results_dir) / "splits" / str(key.split_seed) / "seeds" / str(key.seed)


def read_metrics(path: str | Path) -> dict:
    """One metrics.json; LeukoError naming the file if it is missing, not JSON or lacks a key."""
    path = Path(path)
    data = read_json(path)
    for key in ("seed", "split_seed", "dataset", "n", "n_correct", "accuracy", "balanced_accuracy", "macro_f1",
                "intervals", "calibration", "classes_present", "confidence_level"):
        if key not in data:
            raise LeukoError(f"{path.as_posix()}: missing key '{key}'")
    return data


def metrics_row(metrics: dict, predictions: str = "") -> dict:
    """The flat row of metrics.csv for one run and dataset; `predictions` is the path of its predictions.csv."""
    iv, cal = metrics["intervals"], metrics["calibration"]
    if metrics["split_seed"] is None:
        raise LeukoError(f"metrics of seed {metrics['seed']}, dataset '{metrics['dataset']}': split_seed is null")
    row = {"split_seed": int(metrics["split_seed"]), "seed": int(metrics["seed"]), "dataset": metrics["dataset"],
           "n": metrics["n"],
           "n_correct": metrics["n_correct"], "classes_present": " ".join(metrics["classes_present"])}
    for key in ("accuracy", "balanced_accuracy", "macro_f1"):
        row[key] = metrics[key]
        row[f"{key}_low"] = iv[key]["low"]
        row[f"{key}_high"] = iv[key]["high"]
    base = metrics.get("baselines") or {}
    row.update({key: base.get(key) for key in ("majority_class", "majority_accuracy", "prior_accuracy", "gain",
                                               "gain_low", "gain_high")})
    row.update({"ece": cal["ece"], "brier": cal["brier"], "log_loss": cal["log_loss"],
                "mean_loss": metrics.get("mean_loss"), "confidence_level": metrics["confidence_level"],
                "predictions": predictions})
    return row


def metrics_table(all_metrics: list[dict], predictions: list[str] | None = None) -> pd.DataFrame:
    """metrics.csv: one row per run and dataset, in the given order, with the paths of the predictions."""
    if not all_metrics:
        raise LeukoError("metrics table: no metrics.json files given")
    predictions = predictions or [""] * len(all_metrics)
    if len(predictions) != len(all_metrics):
        raise LeukoError(f"metrics table: {len(all_metrics)} metrics but {len(predictions)} prediction paths")
    return pd.DataFrame([metrics_row(m, p) for m, p in zip(all_metrics, predictions)], columns=METRIC_COLUMNS)


def external_gaps(table: pd.DataFrame) -> pd.DataFrame:
    """external.csv: per run and external set, accuracy minus the same run's test accuracy,
    with a Newcombe hybrid-score interval."""
    rows = []
    for (split_seed, seed), group in table.groupby(["split_seed", "seed"], sort=False):
        test = group[group["dataset"] == "test"]
        if len(test) != 1:
            raise LeukoError(f"metrics table: split seed {split_seed}, seed {seed} has {len(test)} rows for dataset "
                             "'test' (expected 1)")
        t = test.iloc[0]
        for _, e in group[group["dataset"] != "test"].iterrows():
            conf = float(e["confidence_level"])
            low, high = newcombe_difference(int(e["n_correct"]), int(e["n"]), int(t["n_correct"]), int(t["n"]), conf)
            rows.append({"split_seed": int(split_seed), "seed": int(seed), "dataset": e["dataset"], "n": int(e["n"]),
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
