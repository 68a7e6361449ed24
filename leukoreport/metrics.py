"""Read predictions.csv and compute the metrics.json structure of docs/results.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from leukoreport.errors import LeukoError


def prob_columns(classes: list[str]) -> list[str]:
    """Names of the probability columns of predictions.csv, in class order."""
    return ["prob_" + c for c in classes]


def _check_labels(pred: pd.DataFrame, classes: list[str], where: str) -> None:
    """Raise LeukoError when a label or prediction is not one of `classes`."""
    known = set(classes)
    for column in ("label", "prediction"):
        bad = sorted({str(v) for v in pred[column] if v not in known})
        if bad:
            raise LeukoError(f"{where}: column '{column}' has values not among the classes "
                             f"{classes}: {bad[:5]}")


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
    _check_labels(pred, classes, str(path))
    for column in [*prob_columns(classes), "loss"]:
        values = pd.to_numeric(pred[column], errors="coerce")
        if values.isna().any():
            raise LeukoError(f"{path}: column '{column}' has missing or non-numeric values")
        pred[column] = values.astype(float)
    return pred


def _mean_or_none(values: list[float]) -> float | None:
    """Mean of `values` as a plain float, or None when empty."""
    return float(np.mean(values)) if values else None


def compute_metrics(pred: pd.DataFrame, classes: list[str], dataset: str, seed: int) -> dict:
    """The metrics.json dict (plain JSON types) for one dataset and seed."""
    if pred.empty:
        raise LeukoError(f"predictions of '{dataset}': no rows")
    _check_labels(pred, classes, f"predictions of '{dataset}'")
    y_true = pred["label"].astype(str).to_numpy()
    y_pred = pred["prediction"].astype(str).to_numpy()
    matrix = confusion_matrix(y_true, y_pred, labels=classes)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=classes, zero_division=0)
    predicted = matrix.sum(axis=0)

    per_class: dict[str, dict[str, Any]] = {}
    for i, c in enumerate(classes):
        present = bool(support[i] > 0)
        per_class[c] = {
            "present": present,
            "support": int(support[i]),
            "predicted": int(predicted[i]),
            "precision": float(precision[i]) if present else None,
            "recall": float(recall[i]) if present else None,
            "f1": float(f1[i]) if present else None,
        }
    present_classes = [c for c in classes if per_class[c]["present"]]
    n = int(len(pred))
    n_correct = int(np.trace(matrix))
    return {
        "dataset": str(dataset),
        "seed": int(seed),
        "n": n,
        "n_correct": n_correct,
        "accuracy": n_correct / n,
        "balanced_accuracy": _mean_or_none([per_class[c]["recall"] for c in present_classes]),
        "macro_f1": _mean_or_none([per_class[c]["f1"] for c in present_classes]),
        "mean_loss": float(pd.to_numeric(pred["loss"]).mean()),
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
