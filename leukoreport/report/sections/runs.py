"""One section per run of the report: its training (phases, history, speed) and every dataset it was evaluated on."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from leukoreport.base.errors import LeukoError
from leukoreport.report.number_format import DASH, gap_estimate, hms, lr, num, pct, seconds, yes_no
from leukoreport.report.read_results import read_report_csv, read_report_json, require_key
from leukoreport.report.render import png_data_uri
from leukoreport.report.sections.run_datasets import anchor, dataset_section
from leukoreport.stats.run_tables import RunKey, run_folder

__all__ = ["phase_rows", "seed_sections", "training_recipe", "training_summary"]


def phase_rows(train: dict, path: Path) -> list[dict]:
    phases = require_key(train, "phases", path)
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


def training_recipe(train: dict, path: Path) -> dict:
    """The training recipe (identical for every seed in a normal run)."""
    return {
        "size": require_key(train, "size", path),
        "batch_size": require_key(train, "batch_size", path),
        "phases": [{k: r[k] for k in ("phase", "backbone", "lr", "max_epochs", "patience")}
                   for r in phase_rows(train, path)],
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


def _precision_text(precision: str) -> str:
    """The training precision as the report states it."""
    if precision in ("bf16", "fp16"):
        return f"{precision} autocast (weights, evaluation and model.pkl in fp32)"
    return precision


def _run_section(results_dir: Path, key: RunKey, datasets: list[str], limits: dict | None = None) -> dict:
    """One run's section: training facts, phases with their history, and every dataset it was evaluated on."""
    folder = run_folder(results_dir, key)
    tpath = folder / "train.json"
    train = read_report_json(tpath)
    phases = phase_rows(train, tpath)
    hpath = folder / "history.csv"
    history = read_report_csv(hpath, ["phase", "epoch", "phase_epoch", "train_loss", "valid_loss", "accuracy",
                                      "seconds"])
    for ph, extra in zip(phases, _history_extras(history, phases, hpath)):
        ph.update(extra)
    return {
        "seed": key.seed,
        "split_seed": key.split_seed,
        "label": key.label,
        "title": key.label[0].upper() + key.label[1:],
        "anchor": anchor("run", key.split_seed, key.seed),
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
        "seconds": seconds(require_key(train, "seconds", tpath)),
        "hms": hms(train["seconds"]),
        "phases": phases,
        "epochs_run": " + ".join(str(p["epochs_run"]) for p in phases),
        "best_epochs": ", ".join(str(p["best_epoch"]) for p in phases),
        "loss_curves": png_data_uri(folder / "loss_curves.png"),
        "datasets": [dataset_section(results_dir, key, name, limits) for name in datasets],
        "_recipe": training_recipe(train, tpath),
        "_seconds": float(train["seconds"]),
    }


def seed_sections(results_dir: Path, keys: list[RunKey], datasets: list[str], gaps: pd.DataFrame,
                  limits: dict | None = None) -> list[dict]:
    """One context per run (training, every dataset), with each external set's gap to the test accuracy; tables
    capped at `limits` (limits.report_limits, default limits.REPORT_LIMITS)."""
    seed_ctx = [_run_section(results_dir, k, datasets, limits) for k in keys]
    for s in seed_ctx:
        for d in s["datasets"]:
            row = gaps[(gaps["split_seed"] == s["split_seed"]) & (gaps["seed"] == s["seed"])
                       & (gaps["dataset"] == d["name"])]
            if d["name"] != "test" and len(row) == 1:
                d["gap"] = gap_estimate(row["gap"].iloc[0], row["gap_low"].iloc[0], row["gap_high"].iloc[0])
    return seed_ctx


def training_summary(results_dir: Path, key: RunKey) -> dict:
    """One run's recipe, classes, epochs, best epochs, seconds and device from its train.json (the summary's rows)."""
    tpath = run_folder(results_dir, key) / "train.json"
    train = read_report_json(tpath)
    phases = phase_rows(train, tpath)
    return {"seed": key.seed, "recipe": training_recipe(train, tpath), "classes": require_key(train, "classes", tpath),
            "epochs_run": " + ".join(str(p["epochs_run"]) for p in phases),
            "best_epochs": ", ".join(str(p["best_epoch"]) for p in phases),
            "seconds": seconds(require_key(train, "seconds", tpath)), "device": train.get("device", DASH)}
