"""One run's results on one dataset in the report: estimates, calibration, per class, confusion and errors."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from leukoreport.base.errors import LeukoError
from leukoreport.report.gallery_rows import GALLERY_META, left_out_text
from leukoreport.report.limits import report_limits
from leukoreport.report.number_format import DASH, accuracy_text, estimate, num, pct
from leukoreport.report.read_results import (
    gallery_meta,
    gallery_pages,
    need_file,
    read_report_json,
    require_key,
    shown_path,
)
from leukoreport.report.render import png_data_uri
from leukoreport.report.sections.validity import baseline_cells
from leukoreport.stats.metrics import misclassified, read_predictions
from leukoreport.stats.run_tables import RunKey, run_folder

__all__ = ["anchor", "confusion_table", "dataset_section", "dataset_title", "estimate_cells"]


def dataset_title(name: str) -> str:
    return "test split" if name == "test" else f"external set “{name}”"


def anchor(*parts: object) -> str:
    return "-".join(re.sub(r"[^A-Za-z0-9_-]", "_", str(p)) for p in parts)


def _per_class(metrics: dict, path: Path) -> list[dict]:
    rows = []
    per_class = require_key(metrics, "per_class", path)
    for c in require_key(metrics, "classes", path):
        pc = per_class.get(c)
        if pc is None:
            raise LeukoError(f"{path.as_posix()}: per_class has no entry for class '{c}'")
        present = bool(pc.get("present", pc.get("support", 0) > 0))
        rows.append({
            "label": c,
            "present": present,
            "precision": pct(pc.get("precision")) if present else "absent",
            "recall": pct(pc.get("recall")) if present else "absent",
            "recall_ci": estimate(pc.get("recall"), pc.get("recall_low"), pc.get("recall_high"))
            if present else "absent",
            "errors": pc.get("errors", DASH) if present else DASH,
            "error_rate_ci": estimate(pc.get("error_rate"), pc.get("error_rate_low"), pc.get("error_rate_high"))
            if present else "absent",
            "f1": num(pc.get("f1")) if present else "absent",
            "support": pc.get("support", 0),
            "predicted": pc.get("predicted", 0),
        })
    return rows


def _intervals(metrics: dict, path: Path) -> dict:
    """Accuracy (Wilson), balanced accuracy and macro F1 (bootstrap) as formatted estimates."""
    iv = require_key(metrics, "intervals", path)
    out = {}
    for k in ("accuracy", "balanced_accuracy", "macro_f1"):
        if k not in iv:
            raise LeukoError(f"{path.as_posix()}: intervals has no entry for '{k}'")
        out[k] = estimate(metrics[k], iv[k].get("low"), iv[k].get("high"))
    boot = iv["balanced_accuracy"]
    out["bootstrap"] = f"{boot.get('method', 'BCa')} bootstrap, {boot.get('n_resamples', '?')} resamples"
    out["degenerate"] = any(iv[k].get("degenerate") for k in ("balanced_accuracy", "macro_f1"))
    out["level"] = f"{100 * float(metrics.get('confidence_level', 0.95)):g}%"
    return out


def _calibration(metrics: dict, path: Path) -> dict:
    cal = require_key(metrics, "calibration", path)
    for k in ("ece", "brier", "log_loss", "n_bins"):
        if k not in cal:
            raise LeukoError(f"{path.as_posix()}: calibration has no key '{k}'")
    return {"ece": pct(cal["ece"]), "brier": num(cal["brier"]), "log_loss": num(cal["log_loss"]),
            "n_bins": cal["n_bins"]}


def _confused_pairs(metrics: dict, path: Path) -> list[dict]:
    return [{"true": p["true"], "predicted": p["predicted"], "count": p["count"],
             "share_of_true": pct(p["share_of_true"], 1), "share_of_errors": pct(p["share_of_errors"], 1)}
            for p in require_key(metrics, "confused_pairs", path)]


def _confusion(metrics: dict, path: Path) -> dict:
    cm = require_key(metrics, "confusion_matrix", path)
    labels, matrix = cm.get("labels"), cm.get("matrix")
    if not labels or not matrix or len(matrix) != len(labels) or any(len(r) != len(labels) for r in matrix):
        raise LeukoError(f"{path.as_posix()}: confusion_matrix is not a square matrix over its labels")
    rows = []
    for i, (label, row) in enumerate(zip(labels, matrix)):
        rows.append({"label": label, "total": sum(row),
                     "cells": [{"value": v, "diagonal": i == j, "zero": v == 0, "true": label, "pred": labels[j]}
                               for j, v in enumerate(row)]})
    col_totals = [sum(r[j] for r in matrix) for j in range(len(labels))]
    return {"labels": labels, "rows": rows, "col_totals": col_totals, "total": sum(col_totals)}


def confusion_table(labels: list[str], matrix: list[list[int]], path: Path) -> dict:
    """A confusion matrix (rows: true class) as table rows whose cells know their true and predicted class."""
    return _confusion({"confusion_matrix": {"labels": labels, "matrix": matrix}}, path)


def estimate_cells(metrics: dict, path: Path) -> dict:
    """Accuracy, balanced accuracy and macro F1 with their intervals (``ci``) and calibration, formatted as the
    tables of the report show them (a run's or a seed ensemble's metrics.json)."""
    return {"ci": _intervals(metrics, path), "calibration": _calibration(metrics, path)}


def _errors(pred: pd.DataFrame, limit: int | None = None) -> list[dict]:
    """The `limit` most confident misclassified images (all when None), most confident first, formatted for the
    table."""
    wrong = misclassified(pred)
    return [{"file": r["path"], "true": r["label"], "predicted": r["prediction"],
             "confidence": pct(r["confidence"], 1), "p_true": pct(r["p_true"], 1), "loss": num(r["loss"], 3)}
            for _, r in (wrong if limit is None else wrong.head(limit)).iterrows()]


def dataset_section(results_dir: Path, key: RunKey, name: str, limits: dict | None = None) -> dict:
    limits = limits or report_limits()
    folder = run_folder(results_dir, key) / name
    mpath = folder / "metrics.json"
    metrics = read_report_json(mpath)
    for k in ("n", "n_correct", "accuracy", "balanced_accuracy", "macro_f1", "classes"):
        require_key(metrics, k, mpath)
    classes = list(metrics["classes"])
    ppath = need_file(folder / "predictions.csv")
    pred = read_predictions(ppath, classes)
    n_correct = int((pred["label"] == pred["prediction"]).sum())
    if len(pred) != metrics["n"] or n_correct != metrics["n_correct"]:
        raise LeukoError(f"{mpath.as_posix()}: n = {metrics['n']}, n_correct = {metrics['n_correct']} disagree with "
                         f"{ppath.name} ({len(pred)} rows, {n_correct} correct)")
    n_errors = int((pred["label"] != pred["prediction"]).sum())
    errors = _errors(pred, limits["error_rows"])
    listed_in = shown_path(ppath, results_dir)
    present = metrics.get("classes_present") or [r["label"] for r in _per_class(metrics, mpath) if r["present"]]
    return {
        "name": name,
        "title": dataset_title(name),
        "anchor": anchor("run", key.split_seed, key.seed, name),
        "n": metrics["n"],
        "n_correct": metrics["n_correct"],
        "n_errors": n_errors,
        "accuracy": accuracy_text(metrics["accuracy"], metrics["n_correct"], metrics["n"]),
        "balanced_accuracy": pct(metrics["balanced_accuracy"]),
        "macro_f1": num(metrics["macro_f1"]),
        "ci": _intervals(metrics, mpath),
        "calibration": _calibration(metrics, mpath),
        "confused_pairs": _confused_pairs(metrics, mpath),
        "gap": None,
        "baseline": baseline_cells(metrics["baselines"]) if metrics.get("baselines") else None,
        "mean_loss": num(metrics.get("mean_loss"), 4),
        "classes_present": present,
        "n_classes": len(classes),
        "per_class": _per_class(metrics, mpath),
        "confusion": _confusion(metrics, mpath),
        "errors": errors,
        "errors_note": left_out_text(len(errors), n_errors, "misclassified images", listed_in),
        "figures": {k: png_data_uri(folder / f"{k}.png")
                    for k in ("confusion", "per_class", "reliability", "top_losses")},
        "gallery": {"pages": [png_data_uri(page) for page in gallery_pages(folder / "errors")],
                    **gallery_meta(folder / "errors" / GALLERY_META, listed_in)},
        # raw values for the across-seed table
        "_raw": {**{k: metrics[k] for k in ("accuracy", "balanced_accuracy", "macro_f1")},
                 **{k: metrics["calibration"][k] for k in ("ece", "brier", "log_loss")}},
    }
