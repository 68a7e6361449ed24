"""Read predictions.csv and compute the metrics.json structure of docs/results.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from leukoreport.base.errors import LeukoError
from leukoreport.config.settings import Uncertainty
from leukoreport.stats.calibration import calibration
from leukoreport.stats.intervals import bootstrap_ci, wilson

__all__ = ["check_labels", "compute_metrics", "confused_pairs", "misclassified", "prediction_classes",
           "prob_columns", "read_predictions"]


def prob_columns(classes: list[str]) -> list[str]:
    """Names of the probability columns of predictions.csv, in class order."""
    return ["prob_" + c for c in classes]


def check_labels(pred: pd.DataFrame, classes: list[str], where: str) -> None:
    """Raise LeukoError when a label or prediction is not one of `classes`."""
    known = set(classes)
    for column in ("label", "prediction"):
        bad = sorted({str(v) for v in pred[column] if v not in known})
        if bad:
            raise LeukoError(f"{where}: column '{column}' has values not among the classes "
                             f"{classes}: {bad[:5]}")


def prediction_classes(path: str | Path) -> list[str]:
    """The class list of a predictions.csv: its ``prob_<class>`` columns, in order."""
    path = Path(path)
    try:
        header = pd.read_csv(path, nrows=0).columns
    except FileNotFoundError:
        raise LeukoError(f"{path}: file not found") from None
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise LeukoError(f"{path}: cannot read as CSV: {exc}") from None
    classes = [c[len("prob_"):] for c in header if c.startswith("prob_")]
    if not classes:
        raise LeukoError(f"{path}: no prob_<class> columns")
    return classes


def read_predictions(path: str | Path, classes: list[str]) -> pd.DataFrame:
    """Read predictions.csv; LeukoError naming the file if columns or labels are wrong."""
    path = Path(path)
    try:
        pred = pd.read_csv(path, dtype={"path": str, "label": str, "prediction": str})
    except FileNotFoundError:
        raise LeukoError(f"{path}: file not found") from None
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise LeukoError(f"{path}: cannot read as CSV: {exc}") from None
    required = ["path", "label", "prediction", *prob_columns(classes), "loss"]
    missing = [c for c in required if c not in pred.columns]
    if missing:
        raise LeukoError(f"{path}: missing column(s) {missing}")
    if pred.empty:
        raise LeukoError(f"{path}: no rows")
    check_labels(pred, classes, str(path))
    for column in [*prob_columns(classes), "loss"]:
        values = pd.to_numeric(pred[column], errors="coerce")
        if values.isna().any():
            raise LeukoError(f"{path}: column '{column}' has missing or non-numeric values")
        pred[column] = values.astype(float)
    return pred


def _mean_or_none(values: list[float]) -> float | None:
    """Mean of `values` as a plain float, or None when empty."""
    return float(np.mean(values)) if values else None


def _wilson_dict(k: int, n: int, confidence: float) -> dict:
    low, high = wilson(k, n, confidence)
    return {"low": low, "high": high, "method": "Wilson"}


def confused_pairs(matrix: np.ndarray, classes: list[str]) -> list[dict]:
    """Off-diagonal cells with a count, most frequent first: true, predicted, count and shares."""
    n_errors = int(matrix.sum() - np.trace(matrix))
    pairs = []
    for i, a in enumerate(classes):
        for j, b in enumerate(classes):
            if i != j and matrix[i, j] > 0:
                count = int(matrix[i, j])
                pairs.append({"true": a, "predicted": b, "count": count,
                              "share_of_true": count / int(matrix[i].sum()),
                              "share_of_errors": count / n_errors})
    return sorted(pairs, key=lambda p: (-p["count"], p["true"], p["predicted"]))


def compute_metrics(pred: pd.DataFrame, classes: list[str], dataset: str, seed: int | None,
                    uncertainty: Uncertainty | None = None, split_seed: int | None = None) -> dict:
    """The metrics.json dict (plain JSON types) for one dataset and seed, intervals and calibration included
    (`uncertainty`: the schema's defaults when None)."""
    uncertainty = uncertainty or Uncertainty.defaults()
    if pred.empty:
        raise LeukoError(f"predictions of '{dataset}': no rows")
    check_labels(pred, classes, f"predictions of '{dataset}'")
    y_true = pred["label"].astype(str).to_numpy()
    y_pred = pred["prediction"].astype(str).to_numpy()
    matrix = confusion_matrix(y_true, y_pred, labels=classes)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=classes, zero_division=0)
    predicted = matrix.sum(axis=0)

    per_class: dict[str, dict[str, Any]] = {}
    conf = uncertainty.confidence
    for i, c in enumerate(classes):
        present = bool(support[i] > 0)
        hits = int(matrix[i, i])
        recall_ci = wilson(hits, int(support[i]), conf) if present else (None, None)
        per_class[c] = {
            "present": present,
            "support": int(support[i]),
            "predicted": int(predicted[i]),
            "correct": hits,
            "errors": int(support[i]) - hits,
            "precision": float(precision[i]) if present else None,
            "recall": float(recall[i]) if present else None,
            "recall_low": recall_ci[0],
            "recall_high": recall_ci[1],
            "error_rate": 1.0 - float(recall[i]) if present else None,
            "error_rate_low": 1.0 - recall_ci[1] if present else None,
            "error_rate_high": 1.0 - recall_ci[0] if present else None,
            "f1": float(f1[i]) if present else None,
        }
    present_classes = [c for c in classes if per_class[c]["present"]]
    n = int(len(pred))
    n_correct = int(np.trace(matrix))
    index = {c: i for i, c in enumerate(classes)}
    codes_true = np.array([index[c] for c in y_true])
    codes_pred = np.array([index[c] for c in y_pred])
    boot = {name: bootstrap_ci(codes_true, codes_pred, len(classes), name, confidence=conf,
                               n_resamples=uncertainty.n_resamples, seed=uncertainty.bootstrap_seed).to_dict()
            for name in ("balanced_accuracy", "macro_f1")}
    probs = pred[prob_columns(classes)].to_numpy(dtype=float)
    return {
        "dataset": str(dataset),
        "seed": None if seed is None else int(seed),
        "split_seed": None if split_seed is None else int(split_seed),
        "n": n,
        "n_correct": n_correct,
        "accuracy": n_correct / n,
        "balanced_accuracy": _mean_or_none([per_class[c]["recall"] for c in present_classes]),
        "macro_f1": _mean_or_none([per_class[c]["f1"] for c in present_classes]),
        "mean_loss": float(pd.to_numeric(pred["loss"]).mean()),
        "confidence_level": conf,
        "intervals": {"accuracy": _wilson_dict(n_correct, n, conf), **boot},
        "calibration": calibration(probs, codes_true, uncertainty.calibration_bins).to_dict(),
        "confused_pairs": confused_pairs(matrix, classes),
        "classes": list(classes),
        "classes_present": present_classes,
        "per_class": per_class,
        "confusion_matrix": {"labels": list(classes),
                             "matrix": [[int(v) for v in row] for row in matrix]},
    }


def misclassified(pred: pd.DataFrame) -> pd.DataFrame:
    """Rows with label != prediction, plus ``confidence`` (p of the prediction) and ``p_true``,
    most confident first (ties by path)."""
    wrong = pred[pred["label"] != pred["prediction"]].copy()
    wrong["confidence"] = [row[f"prob_{row['prediction']}"] for _, row in wrong.iterrows()]
    wrong["p_true"] = [row[f"prob_{row['label']}"] for _, row in wrong.iterrows()]
    return wrong.sort_values(["confidence", "path"], ascending=[False, True], kind="stable")

