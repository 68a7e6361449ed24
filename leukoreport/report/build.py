"""Turn the files under `results/` (docs/results.md) into a self-contained HTML report and a PDF.

Python computes and formats every number; the Jinja2 templates only lay them out.
"""

from __future__ import annotations

import base64
import importlib.metadata
import json
import os
import platform
import re
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable

import pandas as pd
import yaml
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from leukoreport.data.images import split_counts
from leukoreport.report.model_card import leakage_sentences, limitations, model_card
from leukoreport.config.provenance import Provenance, external_provenance, relation, training_provenance
from leukoreport.base.errors import LeukoError
from leukoreport.report.figures.common import GALLERY_META, PAIR_ORDER, left_out_text, pair_rows, report_limits
from leukoreport.base.atomic_io import atomic_path, read_json, write_text
from leukoreport.report.number_format import (DASH, accuracy_text, estimate, gap_estimate, hms, lr, mean_sd, num, pct, pct1,
                                    seconds, yes_no)
from leukoreport.stats.metrics import misclassified, read_predictions
from leukoreport.report.sections.validity import (baseline_cells, read_validity, summary_external, validity_section,
                                         validity_by_set)
from leukoreport.stats.run_tables import GAP_COLUMNS, METRIC_COLUMNS, RunKey, run_folder, run_keys, run_label

TITLE = "Leukocyte classification — rerun report"
PACKAGES = ("torch", "torchvision", "fastai", "fastcore", "fasttransform", "numpy", "pandas",
            "scikit-learn", "matplotlib", "seaborn", "jinja2", "weasyprint", "snakemake", "pillow",
            "scikit-image", "cleanlab", "grad-cam")


# --------------------------------------------------------------------------- run information

@dataclass
class RunInfo:
    """Where and with what the report's run was made."""

    date: str
    git_commit: str
    packages: dict[str, str] = field(default_factory=dict)
    device: str = ""
    python: str = ""


def _git(project_dir: Path, *args: str) -> str | None:
    """stdout of `git args` in project_dir, or None if git is missing or fails."""
    try:
        done = subprocess.run(["git", *args], cwd=project_dir, capture_output=True, text=True,
                              timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def git_commit(project_dir: str | Path) -> str:
    """Short HEAD commit, '(modified)' appended when tracked files changed; 'unknown' outside a repo."""
    project_dir = Path(project_dir)
    head = _git(project_dir, "rev-parse", "--short", "HEAD")
    if not head or not head.strip():
        return "unknown"
    status = _git(project_dir, "status", "--porcelain", "--untracked-files=no")
    commit = head.strip()
    return f"{commit} (modified)" if status and status.strip() else commit


def package_versions(names: Iterable[str] = PACKAGES) -> dict[str, str]:
    """Installed version of each distribution, 'not installed' when absent."""
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def describe_device() -> str:
    """'CUDA: <name>' when torch sees a GPU, else 'CPU: <processor>, N cores'."""
    try:
        import torch  # lazy: heavy, and the report must work without a GPU

        if torch.cuda.is_available():
            return f"CUDA: {torch.cuda.get_device_name(0)}"
    except Exception:  # torch missing or broken: report the CPU
        pass
    cpu = platform.processor() or platform.machine() or "unknown"
    return f"CPU: {cpu}, {os.cpu_count() or '?'} cores"


def collect_run_info(project_dir: str | Path) -> RunInfo:
    """Date, git commit, package versions, device and Python of this run."""
    return RunInfo(
        date=datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z").strip(),
        git_commit=git_commit(project_dir),
        packages=package_versions(),
        device=describe_device(),
        python=f"{platform.python_version()} ({platform.python_implementation()}, {sys.platform})",
    )


# --------------------------------------------------------------------------- reading files

def _need(path: Path) -> Path:
    if not path.is_file():
        raise LeukoError(f"{path.as_posix()}: file not found (needed for the report)")
    return path


def _read_json(path: Path) -> dict:
    return read_json(path, "the report")


def _read_csv(path: Path, columns: Iterable[str], **kwargs: Any) -> pd.DataFrame:
    _need(path)
    try:
        df = pd.read_csv(path, **kwargs)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise LeukoError(f"{path.as_posix()}: cannot read as CSV ({exc})") from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise LeukoError(f"{path.as_posix()}: missing column(s) {missing}")
    return df


def _key(data: dict, key: str, path: Path) -> Any:
    if key not in data:
        raise LeukoError(f"{path.as_posix()}: missing key '{key}'")
    return data[key]


def png_data_uri(path: Path) -> str:
    """The PNG file as a `data:image/png;base64,...` URI (report.html stays self-contained)."""
    data = _need(path).read_bytes()
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise LeukoError(f"{path.as_posix()}: not a PNG file")
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _natural(text: str) -> list:
    """Sort key: 'train_seed7' before 'train_seed42'."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


# --------------------------------------------------------------------------- context pieces

def _benchmarks(results_dir: Path) -> dict:
    """Wall time and peak memory per Snakemake job, from benchmarks/*.tsv."""
    rows, total = [], 0.0
    files = sorted((results_dir / "benchmarks").glob("*.tsv"), key=lambda p: _natural(p.stem))
    for path in files:
        df = _read_csv(path, ["s"], sep="\t")
        if df.empty:
            raise LeukoError(f"{path.as_posix()}: no rows")
        secs = pd.to_numeric(df["s"], errors="coerce")
        if secs.isna().any():
            raise LeukoError(f"{path.as_posix()}: column 's' has missing or non-numeric values")
        rss = pd.to_numeric(df["max_rss"], errors="coerce") if "max_rss" in df.columns else pd.Series(dtype=float)
        wall = float(secs.mean())  # one row per run; several rows only with repeat()
        total += wall
        peak = float(rss.max()) if rss.notna().any() else None
        rows.append({"job": path.stem, "seconds": seconds(wall), "hms": hms(wall),
                     "max_rss": DASH if peak is None else f"{peak:.0f} MB",
                     "runs": len(df)})
    return {"rows": rows, "total_seconds": seconds(total) if rows else DASH,
            "total_hms": hms(total) if rows else DASH}


def _phase_rows(train: dict, path: Path) -> list[dict]:
    phases = _key(train, "phases", path)
    if not isinstance(phases, list) or not phases:
        raise LeukoError(f"{path.as_posix()}: 'phases' must be a non-empty list")
    rows = []
    for i, ph in enumerate(phases, start=1):
        for k in ("frozen", "lr", "max_epochs", "patience", "epochs_run", "best_epoch", "best_valid_loss",
                  "stopped_early"):
            if k not in ph:
                raise LeukoError(f"{path.as_posix()}: phase {i} has no key '{k}'")
        rows.append({
            "phase": ph.get("phase", i),
            "frozen": yes_no(ph["frozen"]),
            "backbone": "frozen" if ph["frozen"] else "unfrozen",
            "lr": lr(ph["lr"]),
            "max_epochs": ph["max_epochs"],
            "patience": ph["patience"],
            "epochs_run": ph["epochs_run"],
            "best_epoch": ph["best_epoch"],
            "best_valid_loss": num(ph["best_valid_loss"]),
            "stopped_early": yes_no(ph["stopped_early"]),
        })
    return rows


def _recipe(train: dict, path: Path) -> dict:
    """The training recipe (identical for every seed in a normal run)."""
    return {
        "size": _key(train, "size", path),
        "batch_size": _key(train, "batch_size", path),
        "phases": [{k: r[k] for k in ("phase", "backbone", "lr", "max_epochs", "patience")}
                   for r in _phase_rows(train, path)],
    }


def _history_extras(history: pd.DataFrame, phases: list[dict], path: Path) -> list[dict]:
    """Per phase: wall seconds and valid accuracy at the restored best epoch, from history.csv."""
    extras = []
    for ph in phases:
        rows = history[history["phase"] == ph["phase"]]
        best = history[history["epoch"] == ph["best_epoch"]]
        if len(rows) != ph["epochs_run"]:
            raise LeukoError(f"{path.as_posix()}: phase {ph['phase']} has {len(rows)} epoch rows but "
                             f"train.json says epochs_run = {ph['epochs_run']}")
        extras.append({
            "seconds": seconds(pd.to_numeric(rows["seconds"], errors="coerce").sum()),
            "best_accuracy": pct(float(best["accuracy"].iloc[0])) if len(best) else DASH,
        })
    return extras


def _per_class(metrics: dict, path: Path) -> list[dict]:
    rows = []
    per_class = _key(metrics, "per_class", path)
    for c in _key(metrics, "classes", path):
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
    iv = _key(metrics, "intervals", path)
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
    cal = _key(metrics, "calibration", path)
    for k in ("ece", "brier", "log_loss", "n_bins"):
        if k not in cal:
            raise LeukoError(f"{path.as_posix()}: calibration has no key '{k}'")
    return {"ece": pct(cal["ece"]), "brier": num(cal["brier"]), "log_loss": num(cal["log_loss"]),
            "n_bins": cal["n_bins"]}


def _confused_pairs(metrics: dict, path: Path) -> list[dict]:
    return [{"true": p["true"], "predicted": p["predicted"], "count": p["count"],
             "share_of_true": pct(p["share_of_true"], 1), "share_of_errors": pct(p["share_of_errors"], 1)}
            for p in _key(metrics, "confused_pairs", path)]


def _confusion(metrics: dict, path: Path) -> dict:
    cm = _key(metrics, "confusion_matrix", path)
    labels, matrix = cm.get("labels"), cm.get("matrix")
    if not labels or not matrix or len(matrix) != len(labels) or any(len(r) != len(labels) for r in matrix):
        raise LeukoError(f"{path.as_posix()}: confusion_matrix is not a square matrix over its labels")
    rows = []
    for i, (label, row) in enumerate(zip(labels, matrix)):
        rows.append({"label": label, "total": sum(row),
                     "cells": [{"value": v, "diagonal": i == j, "zero": v == 0} for j, v in enumerate(row)]})
    col_totals = [sum(r[j] for r in matrix) for j in range(len(labels))]
    return {"labels": labels, "rows": rows, "col_totals": col_totals, "total": sum(col_totals)}


def _errors(pred: pd.DataFrame, limit: int | None = None) -> list[dict]:
    """The `limit` most confident misclassified images (all when None), most confident first, formatted for the
    table."""
    wrong = misclassified(pred)
    return [{"file": r["path"], "true": r["label"], "predicted": r["prediction"],
             "confidence": pct(r["confidence"], 1), "p_true": pct(r["p_true"], 1), "loss": num(r["loss"], 3)}
            for _, r in (wrong if limit is None else wrong.head(limit)).iterrows()]


def _shown_path(path: Path, results_dir: Path) -> str:
    """`path` as the report names it: as given under a relative results folder ('results/splits/...'), else from
    the results folder's own name."""
    if not results_dir.is_absolute():
        return path.as_posix()
    return (Path(results_dir.name) / path.relative_to(results_dir)).as_posix()


def _sentence(text: str) -> str:
    """`text` with a capital first letter and a full stop; '' stays ''."""
    return f"{text[0].upper()}{text[1:]}." if text else ""


def _gallery_meta(path: Path, listed_in: str) -> dict:
    """What a capped gallery shows, from the JSON its plotting step wrote beside it (figures.write_gallery_meta):
    ``shown``, ``total`` and the left-out ``note`` naming `listed_in` ('' when every item is drawn, or when the
    JSON is missing: results of earlier versions drew every item)."""
    if not path.is_file():
        return {"shown": None, "total": None, "note": ""}
    meta = _read_json(path)
    for k in ("shown", "total", "noun"):
        _key(meta, k, path)
    return {"shown": meta["shown"], "total": meta["total"],
            "note": _sentence(left_out_text(int(meta["shown"]), int(meta["total"]), str(meta["noun"]), listed_in))}


def dataset_title(name: str) -> str:
    return "test split" if name == "test" else f"external set “{name}”"


def _gallery_pages(folder: Path) -> list[Path]:
    """The error-gallery pages (``page-NN.png``) in order; LeukoError naming the folder when there are none."""
    pages = sorted(folder.glob("page-*.png"))
    if not pages:
        raise LeukoError(f"{folder.as_posix()}/page-01.png: file not found (needed for the report)")
    return pages


def _anchor(*parts: object) -> str:
    return "-".join(re.sub(r"[^A-Za-z0-9_-]", "_", str(p)) for p in parts)


def _precision_text(precision: str) -> str:
    """The training precision as the report states it."""
    if precision in ("bf16", "fp16"):
        return f"{precision} autocast (weights, evaluation and model.pkl in fp32)"
    return precision


def _dataset(results_dir: Path, key: RunKey, name: str, limits: dict | None = None) -> dict:
    limits = limits or report_limits()
    folder = run_folder(results_dir, key) / name
    mpath = folder / "metrics.json"
    metrics = _read_json(mpath)
    for k in ("n", "n_correct", "accuracy", "balanced_accuracy", "macro_f1", "classes"):
        _key(metrics, k, mpath)
    classes = list(metrics["classes"])
    ppath = _need(folder / "predictions.csv")
    pred = read_predictions(ppath, classes)
    n_correct = int((pred["label"] == pred["prediction"]).sum())
    if len(pred) != metrics["n"] or n_correct != metrics["n_correct"]:
        raise LeukoError(f"{mpath.as_posix()}: n = {metrics['n']}, n_correct = {metrics['n_correct']} disagree with "
                         f"{ppath.name} ({len(pred)} rows, {n_correct} correct)")
    n_errors = int((pred["label"] != pred["prediction"]).sum())
    errors = _errors(pred, limits["error_rows"])
    listed_in = _shown_path(ppath, results_dir)
    present = metrics.get("classes_present") or [r["label"] for r in _per_class(metrics, mpath) if r["present"]]
    return {
        "name": name,
        "title": dataset_title(name),
        "anchor": _anchor("run", key.split_seed, key.seed, name),
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
        "gallery": {"pages": [png_data_uri(page) for page in _gallery_pages(folder / "errors")],
                    **_gallery_meta(folder / "errors" / GALLERY_META, listed_in)},
        # raw values for the across-seed table
        "_raw": {**{k: metrics[k] for k in ("accuracy", "balanced_accuracy", "macro_f1")},
                 **{k: metrics["calibration"][k] for k in ("ece", "brier", "log_loss")}},
    }


def _seed(results_dir: Path, key: RunKey, datasets: list[str], limits: dict | None = None) -> dict:
    folder = run_folder(results_dir, key)
    tpath = folder / "train.json"
    train = _read_json(tpath)
    phases = _phase_rows(train, tpath)
    hpath = folder / "history.csv"
    history = _read_csv(hpath, ["phase", "epoch", "phase_epoch", "train_loss", "valid_loss", "accuracy", "seconds"])
    for ph, extra in zip(phases, _history_extras(history, phases, hpath)):
        ph.update(extra)
    return {
        "seed": key.seed,
        "split_seed": key.split_seed,
        "label": key.label,
        "title": key.label[0].upper() + key.label[1:],
        "anchor": _anchor("run", key.split_seed, key.seed),
        "device": train.get("device", DASH),
        "precision": _precision_text(train.get("precision", "fp32")),
        "speed": ", ".join(x for x in (
            "image cache" if train.get("image_cache") else "",
            "channels-last" if train.get("channels_last") else "",
            "no per-batch sync" if train.get("lean_loop") else "",
            "foreach Adam step" if "foreach" in train.get("optimizer", "") else "") if x) or "none",
        "images_per_second": DASH if train.get("train_images_per_second") is None
        else f"{train['train_images_per_second']:.1f}",
        "threads": train.get("threads", DASH),
        "n_train": train.get("n_train", DASH),
        "n_valid": train.get("n_valid", DASH),
        "seconds": seconds(_key(train, "seconds", tpath)),
        "hms": hms(train["seconds"]),
        "phases": phases,
        "epochs_run": " + ".join(str(p["epochs_run"]) for p in phases),
        "best_epochs": ", ".join(str(p["best_epoch"]) for p in phases),
        "loss_curves": png_data_uri(folder / "loss_curves.png"),
        "datasets": [_dataset(results_dir, key, name, limits) for name in datasets],
        "_recipe": _recipe(train, tpath),
        "_seconds": float(train["seconds"]),
    }


def _summary(seeds: list[dict], datasets: list[str]) -> dict:
    """Per dataset one table with a row per seed (estimates with intervals, calibration) and mean ± SD."""
    tables = []
    for i, name in enumerate(datasets):
        rows = [{"label": s["label"], "ci": s["datasets"][i]["ci"], "calibration": s["datasets"][i]["calibration"]}
                for s in seeds]
        raw = [s["datasets"][i]["_raw"] for s in seeds]
        mean = None
        if len(seeds) >= 2:
            mean = {k: mean_sd([r[k] for r in raw], "pct") for k in ("accuracy", "balanced_accuracy", "macro_f1", "ece")}
            mean.update({k: mean_sd([r[k] for r in raw], "num") for k in ("brier", "log_loss")})
        tables.append({"name": name, "title": dataset_title(name), "n": seeds[0]["datasets"][i]["n"],
                       "rows": rows, "mean": mean, "baseline": seeds[0]["datasets"][i]["baseline"]})
    training = [{"label": s["label"], "epochs_run": s["epochs_run"], "best_epochs": s["best_epochs"],
                 "seconds": s["seconds"]} for s in seeds]
    seconds_mean = mean_sd([s["_seconds"] for s in seeds], "seconds") if len(seeds) >= 2 else None
    return {"datasets": [{"name": d, "title": dataset_title(d)} for d in datasets], "tables": tables,
            "training": training, "seconds_mean": seconds_mean}


def _origin(provenance: Provenance) -> str:
    """'facts; citation' of declared provenance ('' when nothing is declared)."""
    parts = [p for p in (provenance.facts(), provenance.citation) if p]
    return "; ".join(parts) if parts else ""


def _data(results_dir: Path, split_seed: int, datasets: list[str], classes: list[str], config: dict) -> dict:
    spath = results_dir / "splits" / str(split_seed) / "split.csv"
    split = _read_csv(spath, ["path", "label", "split"], dtype={"path": str, "label": str, "split": str})
    table = split_counts(split)
    split_rows = [{"label": r["label"], "train": int(r["train"]), "valid": int(r["valid"]),
                   "test": int(r["test"]), "total": int(r["total"]), "is_total": r["label"] == "total"
                   and i == len(table) - 1}
                  for i, (_, r) in enumerate(table.iterrows())]
    external = []
    for name in datasets:
        if name == "test":
            continue
        epath = results_dir / "data" / "external" / f"{name}.csv"
        ext = _read_csv(epath, ["path", "label"], dtype={"path": str, "label": str})
        counts = ext["label"].value_counts()
        labels = list(classes) + sorted(set(counts.index) - set(classes))
        declared = external_provenance(config).get(name, Provenance())
        classes_json = epath.with_suffix(".json")  # the class folders matched (rule external)
        mapped = _read_json(classes_json).get("mapped", []) if classes_json.is_file() else []
        external.append({"name": name,
                         "rows": [{"label": c, "count": int(counts.get(c, 0))} for c in labels],
                         "total": int(len(ext)), "origin": _origin(declared),
                         "relation": relation(config, name),
                         "mapped": mapped})
    train = training_provenance(config)
    citation = _origin(train) or "not given in the config (data_provenance)"
    return {"citation": citation, "split_seed": split_seed, "split_rows": split_rows, "n_images": int(len(split)), "external": external}


def _weights(results_dir: Path) -> dict:
    wpath = results_dir / "weights" / "resnet18.json"
    w = _read_json(wpath)
    return {"init": _key(w, "init", wpath), "pretrained": yes_no(w.get("pretrained")),
            "path": w.get("path") or DASH, "sha256": w.get("sha256") or DASH}


def config_yaml(config: dict) -> str:
    """The config as block YAML (values YAML cannot represent are written as text)."""
    if not config:
        return "(empty)"
    try:
        text = yaml.safe_dump(config, sort_keys=False, allow_unicode=True, default_flow_style=False)
    except yaml.YAMLError:
        plain = json.loads(json.dumps(config, default=str))
        text = yaml.safe_dump(plain, sort_keys=False, allow_unicode=True, default_flow_style=False)
    return text.rstrip()


def seed_sections(results_dir: Path, keys: list[RunKey], datasets: list[str], gaps: pd.DataFrame,
                  limits: dict | None = None) -> list[dict]:
    """One context per run (training, every dataset), with each external set's gap to the test accuracy; tables
    capped at `limits` (figures.report_limits, default figures.REPORT_LIMITS)."""
    seed_ctx = [_seed(results_dir, k, datasets, limits) for k in keys]
    for s in seed_ctx:
        for d in s["datasets"]:
            row = gaps[(gaps["split_seed"] == s["split_seed"]) & (gaps["seed"] == s["seed"])
                       & (gaps["dataset"] == d["name"])]
            if d["name"] != "test" and len(row) == 1:
                d["gap"] = gap_estimate(row["gap"].iloc[0], row["gap_low"].iloc[0], row["gap_high"].iloc[0])
    return seed_ctx


def build_context(results_dir: str | Path, config: dict, splits: list[int], seeds: list[int], datasets: list[str],
                  run_info: RunInfo, shared_dir: str | Path | None = None) -> dict:
    """Everything the template shows, formatted, from the files of docs/results.md.

    `shared_dir` holds the splits, external lists, weights and leakage audit (default: `results_dir`).
    """
    results_dir = Path(results_dir)
    shared = Path(shared_dir) if shared_dir is not None else results_dir
    seeds = [int(s) for s in seeds]
    datasets = [str(d) for d in datasets]
    if not seeds:
        raise LeukoError("seeds: no seeds to report")
    if not datasets:
        raise LeukoError("datasets: no datasets to report")
    config = dict(config or {})
    limits = report_limits(config)
    weights = _weights(shared)
    keys = run_keys(splits, seeds)
    if not keys:
        raise LeukoError("split_seeds: no split seeds to report")
    table, gaps = _summary_tables(results_dir)
    seed_ctx = seed_sections(results_dir, keys, datasets, gaps, limits)
    for number, s in enumerate(seed_ctx, start=9):
        s["number"] = number
    classes = seed_ctx[0]["datasets"][0]["per_class"]
    classes = [r["label"] for r in classes]
    notes = []
    recipe = seed_ctx[0]["_recipe"]
    for s in seed_ctx[1:]:
        if s["_recipe"] != recipe:
            notes.append(f"{s['label']} was trained with a different recipe from {seed_ctx[0]['label']}; "
                         f"see its section")
    data = _data(shared, keys[0].split_seed, datasets, classes, config)
    leakage = [_leakage(shared, split, limits=limits) for split in dict.fromkeys(k.split_seed for k in keys)]
    validity = read_validity(results_dir)
    external = _external(gaps, data, validity)
    return {
        "title": TITLE,
        "run": {"date": run_info.date, "git_commit": run_info.git_commit, "device": run_info.device,
                "python": run_info.python,
                "packages": [{"name": k, "version": v} for k, v in run_info.packages.items()]},
        "weights": weights,
        "recipe": recipe,
        "config_yaml": config_yaml(config),
        "benchmarks": _benchmarks(results_dir),
        "data": data,
        "classes": classes,
        "seeds": seed_ctx,
        "seed_groups": [{"title": None, "anchor": None, "seeds": seed_ctx}],
        "variants": None,
        "shift": 0,
        "summary": _summary(seed_ctx, datasets),
        "leakage": leakage,
        "external": external,
        "robustness": _robustness(results_dir, keys, datasets),
        "validity": validity_section(results_dir, keys, datasets, png_data_uri, shared, limits["label_rows"]),
        "card": model_card(config, weights, recipe, data, table, leakage, keys, validity_by_set(validity)),
        "notes": notes,
    }


def _leakage(results_dir: Path, split_seed: int, with_pages: bool = True, limits: dict | None = None) -> dict:
    """The leakage audit of one split seed: counts per scope, the first ``limits["pair_rows"]`` pairs most
    informative first (figures.pair_rows) as table rows, and the thumbnail pages."""
    audit = results_dir / "splits" / str(split_seed) / "audit"
    spath = audit / "leakage.json"
    summary = _read_json(spath)
    for k in ("n_images", "n_pairs", "n_exact", "n_near", "max_distance", "hash", "hash_bits", "by_scope",
              "label_conflicts"):
        _key(summary, k, spath)
    ctx = {"split_seed": split_seed, "n_images": summary["n_images"], "n_pairs": summary["n_pairs"], "n_exact": summary["n_exact"],
           "n_near": summary["n_near"], "max_distance": summary["max_distance"], "hash": summary["hash"],
           "hash_bits": summary["hash_bits"], "label_conflicts": summary["label_conflicts"],
           "scopes": [{"scope": k, "exact": v.get("exact", 0), "near": v.get("near", 0)}
                      for k, v in summary["by_scope"].items()],
           "groups": summary.get("groups", {})}
    ctx["group_rows"] = [{"group": g, **c} for g, c in ctx["groups"].items()]
    ctx["sentences"] = leakage_sentences([ctx])[1:] if ctx["n_pairs"] else []
    if with_pages:
        ppath = audit / "leakage.csv"
        pairs = _read_csv(ppath, ["path_a", "group_a", "label_a", "path_b", "group_b", "label_b", "distance", "kind",
                                  "scope", "same_label"], dtype={"path_a": str, "path_b": str})
        if len(pairs) != summary["n_pairs"]:
            raise LeukoError(f"{spath.as_posix()}: n_pairs = {summary['n_pairs']} disagrees with {ppath.name} "
                             f"({len(pairs)} rows)")
        limits = limits or report_limits()
        listed_in = _shown_path(ppath, results_dir)
        shown = pair_rows(pairs, limits["pair_rows"])
        ctx["pairs"] = [{"number": int(r["number"]), "kind": r["kind"], "distance": int(r["distance"]),
                         "scope": r["scope"], "a": f"{r['group_a']} · {r['label_a']}", "file_a": r["path_a"],
                         "b": f"{r['group_b']} · {r['label_b']}", "file_b": r["path_b"],
                         "same_label": yes_no(bool(r["same_label"]))}
                        for _, r in shown.iterrows()]
        ctx["pairs_note"] = left_out_text(len(shown), len(pairs), "duplicate pairs", listed_in)
        ctx["order"] = PAIR_ORDER
        ctx["pages"] = [png_data_uri(p) for p in _gallery_pages(audit / "pairs")]
        ctx["gallery"] = _gallery_meta(audit / "pairs" / GALLERY_META, listed_in)
    return ctx


def _summary_tables(results_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """results/summary/metrics.csv and external.csv."""
    folder = results_dir / "summary"
    table = _read_csv(folder / "metrics.csv", METRIC_COLUMNS, dtype={"dataset": str})
    gaps = _read_csv(folder / "external.csv", GAP_COLUMNS, dtype={"dataset": str})
    return table, gaps


def _external(gaps: pd.DataFrame, data: dict, validity: pd.DataFrame | None = None) -> list[dict]:
    """Per external set: its size and classes, and per seed accuracy, test accuracy and the gap with intervals,
    with the majority baseline and the domain AUC from validity.csv when given."""
    extra = summary_external(validity) if validity is not None else {}
    out = []
    for e in data["external"]:
        rows = gaps[gaps["dataset"] == e["name"]]
        present = [r["label"] for r in e["rows"] if r["count"] > 0]
        out.append({
            "name": e["name"], "total": e["total"], "classes_present": present,
            "classes_text": f"all {len(present)}" if len(present) == len(e["rows"]) else ", ".join(present),
            "rows": [{"label": run_label(int(r["split_seed"]), int(r["seed"]), gaps["split_seed"].nunique()),
                      "accuracy": estimate(r["accuracy"], r["accuracy_low"], r["accuracy_high"]),
                      "n_correct": int(round(r["accuracy"] * r["n"])), "n": int(r["n"]),
                      "test_accuracy": estimate(r["test_accuracy"], r["test_accuracy_low"], r["test_accuracy_high"]),
                      "gap": gap_estimate(r["gap"], r["gap_low"], r["gap_high"]),
                      "gap_excludes_zero": bool(r["gap_low"] > 0 or r["gap_high"] < 0),
                      "validity": extra.get((int(r["split_seed"]), int(r["seed"]), str(e["name"])))}
                     for _, r in rows.iterrows()],
        })
    return out


METRIC_NAMES = {"accuracy": "accuracy", "balanced_accuracy": "balanced accuracy", "macro_f1": "macro F1",
                "ece": "calibration error (ECE)"}


def _metric_name(key: str) -> str:
    return METRIC_NAMES.get(key) or ("recall of " + key[len("recall_"):] if key.startswith("recall_") else key)


def _spread_rows(spreads: dict) -> list[dict]:
    """One row per metric: mean ± SD, t interval of the mean (clipped to 0–100%), min and max over runs."""
    rows = []
    for key, sp in spreads.items():
        low, high = sp.get("t_low"), sp.get("t_high")  # a mean of proportions: show the interval within 0–100%
        interval = estimate(sp["mean"], None if low is None else max(0.0, low), None if high is None else min(1.0, high))
        rows.append({"metric": _metric_name(key), "n_runs": sp["n_runs"], "mean": pct(sp["mean"]),
                     "sd": DASH if sp.get("sd") is None else f"{100 * sp['sd']:.2f}",
                     "interval": f"[{interval.interval}]" if interval.interval else DASH,
                     "min": pct1(sp["min"]), "max": pct1(sp["max"])})
    return rows


def _robustness(results_dir: Path, keys: list[RunKey], datasets: list[str]) -> dict:
    """Spread across seeds, seed ensemble, per-image agreement and variance components, from results/summary."""
    folder = results_dir / "summary"
    rpath = folder / "robustness.json"
    rob = _read_json(rpath)
    for k in ("confidence_level", "across_seeds", "by_split", "variance_components"):
        _key(rob, k, rpath)
    figures = folder / "robustness"
    out = []
    for name in datasets:
        spreads = rob["across_seeds"].get(name)
        if spreads is None:
            raise LeukoError(f"{rpath.as_posix()}: across_seeds has no entry for dataset '{name}'")
        splits = []
        for split in dict.fromkeys(k.split_seed for k in keys):
            entry = _key(rob["by_split"], str(split), rpath)["datasets"].get(name)
            if entry is None:
                raise LeukoError(f"{rpath.as_posix()}: by_split.{split} has no entry for dataset '{name}'")
            epath = results_dir / "splits" / str(split) / "ensemble" / name / "metrics.json"
            ens = _read_json(epath)
            iv = _key(ens, "intervals", epath)
            e, img, dis = entry["ensemble"], entry["images"], entry["disagreement"]
            splits.append({
                "split_seed": split,
                "ensemble": {"accuracy": estimate(ens["accuracy"], iv["accuracy"]["low"], iv["accuracy"]["high"]),
                             "n_correct": ens["n_correct"], "n": ens["n"],
                             "balanced_accuracy": estimate(ens["balanced_accuracy"], iv["balanced_accuracy"]["low"],
                                                           iv["balanced_accuracy"]["high"]),
                             "macro_f1": estimate(ens["macro_f1"], iv["macro_f1"]["low"], iv["macro_f1"]["high"]),
                             "ece": pct(ens["calibration"]["ece"]),
                             "rank": f"{e['rank']} of {e['n_runs']}"},
                "single_mean": pct(entry["across_seeds"]["accuracy"]["mean"]),
                "images": img,
                "mean_rate": pct(dis["mean_rate"]) if dis["mean_rate"] is not None else DASH,
                "max_rate": pct(dis["max_rate"]) if dis["max_rate"] is not None else DASH,
                "pairs": [{"a": p["run_a"], "b": p["run_b"], "rate": pct(p["rate"]), "disagree": p["disagree"],
                           "n": p["n"], "both_wrong": p["both_wrong"]} for p in dis["pairs"]],
                "galleries": {kind: png_data_uri(figures / f"split{split}_{name}_{kind}.png")
                              for kind in ("always_wrong", "unstable")},
                "gallery_notes": {kind: _gallery_meta(figures / f"split{split}_{name}_{kind}.json",
                                                      _shown_path(folder / "agreement.csv", results_dir))["note"]
                                  for kind in ("always_wrong", "unstable")},
            })
        out.append({"name": name, "title": dataset_title(name), "anchor": _anchor("robustness", name),
                    "n_runs": spreads["accuracy"]["n_runs"], "rows": _spread_rows(spreads),
                    "figure": png_data_uri(figures / f"seeds_{name}.png"), "splits": splits})
    variance = [{"dataset": d, "metric": _metric_name(m), "n_splits": v["n_splits"],
                 "seeds_per_split": v["seeds_per_split"], "sd_split": f"{100 * v['sd_split']:.2f}",
                 "sd_init": f"{100 * v['sd_initialisation']:.2f}",
                 "share_split": DASH if v.get("share_split") is None else pct(v["share_split"], 0)}
                for d, metrics in rob["variance_components"].items() for m, v in metrics.items()]
    return {"level": f"{100 * float(rob['confidence_level']):g}%", "datasets": out, "variance": variance,
            "several_splits": len({k.split_seed for k in keys}) > 1}


def _headline(table: pd.DataFrame, dataset: str) -> dict:
    """Rows per seed of one dataset from metrics.csv (estimates with intervals) and mean ± SD over seeds."""
    group = table[table["dataset"] == dataset]
    rows = [{"label": run_label(int(r["split_seed"]), int(r["seed"]), group["split_seed"].nunique()), "n": int(r["n"]), "n_correct": int(r["n_correct"]),
             **{k: estimate(r[k], r[f"{k}_low"], r[f"{k}_high"]) for k in ("accuracy", "balanced_accuracy", "macro_f1")},
             "ece": pct(r["ece"]), "brier": num(r["brier"]),
             "majority": DASH if pd.isna(r.get("majority_accuracy")) else pct1(r["majority_accuracy"])}
            for _, r in group.iterrows()]
    mean = None
    if len(group) >= 2:
        mean = {k: mean_sd(list(group[k]), "pct") for k in ("accuracy", "balanced_accuracy", "macro_f1", "ece")}
        mean["brier"] = mean_sd(list(group["brier"]), "num")
    return {"rows": rows, "mean": mean}


def summary_context(results_dir: str | Path, config: dict, splits: list[int], seeds: list[int], datasets: list[str],
                    run_info: RunInfo, shared_dir: str | Path | None = None) -> dict:
    """What the two-page summary shows, from the summary tables, train.json files and the leakage audit."""
    results_dir = Path(results_dir)
    shared = Path(shared_dir) if shared_dir is not None else results_dir
    seeds = [int(s) for s in seeds]
    keys = run_keys(splits, seeds)
    if not keys:
        raise LeukoError("seeds: no seeds to report")
    config = dict(config or {})
    weights = _weights(shared)
    trains = []
    for key in keys:
        tpath = run_folder(results_dir, key) / "train.json"
        train = _read_json(tpath)
        phases = _phase_rows(train, tpath)
        trains.append({"seed": key.seed, "recipe": _recipe(train, tpath), "classes": _key(train, "classes", tpath),
                       "epochs_run": " + ".join(str(p["epochs_run"]) for p in phases),
                       "best_epochs": ", ".join(str(p["best_epoch"]) for p in phases),
                       "seconds": seconds(_key(train, "seconds", tpath)), "device": train.get("device", DASH)})
    classes = list(trains[0]["classes"])
    data = _data(shared, keys[0].split_seed, [str(d) for d in datasets], classes, config)
    table, gaps = _summary_tables(results_dir)
    leakage = [_leakage(shared, split, with_pages=False) for split in dict.fromkeys(k.split_seed for k in keys)]
    headline = _headline(table, "test")
    validity = read_validity(results_dir)
    robustness = _robustness(results_dir, keys, ["test"])["datasets"][0]
    for row, t in zip(headline["rows"], trains):
        row.update({k: t[k] for k in ("epochs_run", "best_epochs", "seconds")})
    return {
        "title": "Leukocyte classification with a two-phase ResNet18: rerun summary",
        "run": {"date": run_info.date, "git_commit": run_info.git_commit, "device": trains[0]["device"]},
        "weights": weights,
        "recipe": trains[0]["recipe"],
        "classes": classes,
        "seeds": seeds,
        "split_seeds": list(dict.fromkeys(k.split_seed for k in keys)),
        "runs": [k.label for k in keys],
        "data": data,
        "test": headline,
        "external": _external(gaps, data, validity),
        "leakage": leakage,
        "robustness": {"rows": robustness["rows"][:4], "splits": robustness["splits"],
                       "n_runs": robustness["n_runs"]},
        "figures": {"curves": png_data_uri(results_dir / "summary" / "curves.png"),
                    "confusion": png_data_uri(results_dir / "summary" / "confusion_test.png")},
        "limitations": limitations(config, weights, data, table, leakage, keys, validity_by_set(validity),
                                   leakage_in_section=True),
        "variants": None,
        "level": f"{100 * float(table['confidence_level'].iloc[0]):g}%",
    }


# --------------------------------------------------------------------------- rendering and writing

def make_environment(templates_dir: str | Path) -> Environment:
    """Jinja2 environment that escapes everything and fails on undefined names."""
    return Environment(loader=FileSystemLoader(str(templates_dir)), autoescape=True,
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def render_html(context: dict, templates_dir: str | Path, name: str = "report") -> str:
    """Template `name`.html.j2 as one self-contained HTML string (`name`.css inlined, figures as data URIs)."""
    templates_dir = Path(templates_dir)
    css_path = templates_dir / f"{name}.css"
    css = css_path.read_text(encoding="utf-8") if css_path.is_file() else ""
    if "</style" in css.lower():
        raise LeukoError(f"{css_path.as_posix()}: must not contain '</style'")
    env = make_environment(templates_dir)
    return env.get_template(f"{name}.html.j2").render(**context, css=Markup(css))


def write_html(html: str, out: str | Path) -> None:
    """Write the HTML atomically."""
    write_text(html, out)


def write_pdf(html_path: str | Path, pdf_path: str | Path) -> None:
    """Render report.html to PDF with WeasyPrint, atomically."""
    html_path = Path(html_path)
    if not html_path.is_file():
        raise LeukoError(f"{html_path.as_posix()}: file not found (needed to write {Path(pdf_path).as_posix()})")
    from PIL import ImageFile

    relaxed = ImageFile.LOAD_TRUNCATED_IMAGES
    import weasyprint  # lazy: slow import; it sets PIL's LOAD_TRUNCATED_IMAGES, which we restore

    ImageFile.LOAD_TRUNCATED_IMAGES = relaxed

    with atomic_path(pdf_path) as tmp:
        weasyprint.HTML(filename=str(html_path)).write_pdf(tmp)
