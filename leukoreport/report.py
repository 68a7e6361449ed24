"""Turn the files under `results/` (docs/results.md) into a self-contained HTML report and a PDF.

Python computes and formats every number; the Jinja2 templates only lay them out.
"""

from __future__ import annotations

import base64
import importlib.metadata
import json
import math
import os
import platform
import re
import statistics
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

from leukoreport.data import split_counts
from leukoreport.errors import LeukoError
from leukoreport.files import atomic_path, write_text
from leukoreport.metrics import misclassified, read_predictions

TITLE = "Leukocyte classification — rerun report"
DASH = "—"
DEFAULT_CITATION = ("PBC dataset, Acevedo et al. (2020), Data in Brief 30:105474, "
                    "doi:10.1016/j.dib.2020.105474, CC BY 4.0")
PACKAGES = ("torch", "torchvision", "fastai", "fastcore", "fasttransform", "numpy", "pandas",
            "scikit-learn", "matplotlib", "seaborn", "jinja2", "weasyprint", "snakemake", "pillow")
TEMPLATE = "report.html.j2"
STYLESHEET = "report.css"


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


# --------------------------------------------------------------------------- formatting helpers

def _missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def pct(x: float | None, digits: int = 2) -> str:
    """0.99467 -> '99.47%'; None -> '—'."""
    return DASH if _missing(x) else f"{100 * float(x):.{digits}f}%"


def num(x: float | None, digits: int = 4) -> str:
    """Fixed decimals; None -> '—'."""
    return DASH if _missing(x) else f"{float(x):.{digits}f}"


def lr(x: float | None) -> str:
    """Learning rate, shortest form: 0.001 -> '0.001', 1e-05 -> '1e-05'."""
    return DASH if _missing(x) else f"{float(x):g}"


def seconds(x: float | None) -> str:
    """812.43 -> '812.4 s'."""
    return DASH if _missing(x) else f"{float(x):.1f} s"


def hms(x: float | None) -> str:
    """812.4 -> '0:13:32'."""
    if _missing(x):
        return DASH
    total = int(round(float(x)))
    return f"{total // 3600}:{total % 3600 // 60:02d}:{total % 60:02d}"


def yes_no(x: bool | None) -> str:
    return DASH if x is None else ("yes" if x else "no")


def accuracy_text(accuracy: float | None, n_correct: int, n: int) -> str:
    """'99.47% (373/375)'."""
    return f"{pct(accuracy)} ({n_correct}/{n})"


@dataclass(frozen=True)
class MeanSD:
    """A formatted 'mean ± SD'; str() gives the one-line text, the template may stack the parts."""

    mean: str
    sd: str

    def __str__(self) -> str:
        return self.mean if self.sd == "" else f"{self.mean} ± {self.sd}"


def mean_sd(values: list[float | None], kind: str) -> MeanSD:
    """Mean and sample SD of values; kind 'pct' (SD in percentage points), 'num' or 'seconds'."""
    vals = [float(v) for v in values if not _missing(v)]
    if len(vals) < 2:
        return MeanSD(DASH, "")
    mean, sd = statistics.mean(vals), statistics.stdev(vals)
    if kind == "pct":
        return MeanSD(f"{100 * mean:.2f}%", f"{100 * sd:.2f}")
    if kind == "seconds":
        return MeanSD(f"{mean:.1f} s", f"{sd:.1f} s")
    return MeanSD(f"{mean:.4f}", f"{sd:.4f}")


# --------------------------------------------------------------------------- reading files

def _need(path: Path) -> Path:
    if not path.is_file():
        raise LeukoError(f"{path.as_posix()}: file not found (needed for the report)")
    return path


def _read_json(path: Path) -> dict:
    _need(path)
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LeukoError(f"{path.as_posix()}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise LeukoError(f"{path.as_posix()}: expected a JSON object")
    return data


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
            "f1": num(pc.get("f1")) if present else "absent",
            "support": pc.get("support", 0),
            "predicted": pc.get("predicted", 0),
        })
    return rows


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


def _errors(pred: pd.DataFrame) -> list[dict]:
    """Misclassified images, most confident first, formatted for the table."""
    return [{"file": r["path"], "true": r["label"], "predicted": r["prediction"],
             "confidence": pct(r["confidence"], 1), "p_true": pct(r["p_true"], 1), "loss": num(r["loss"], 3)}
            for _, r in misclassified(pred).iterrows()]


def dataset_title(name: str) -> str:
    return "test split" if name == "test" else f"external set “{name}”"


def _gallery_pages(folder: Path) -> list[Path]:
    """The error-gallery pages (``page-NN.png``) in order; LeukoError naming the folder when there are none."""
    pages = sorted(folder.glob("page-*.png"))
    if not pages:
        raise LeukoError(f"{folder.as_posix()}/page-01.png: file not found (needed for the report)")
    return pages


def _dataset(results_dir: Path, seed: int, name: str) -> dict:
    folder = results_dir / "seeds" / str(seed) / name
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
    errors = _errors(pred)
    present = metrics.get("classes_present") or [r["label"] for r in _per_class(metrics, mpath) if r["present"]]
    return {
        "name": name,
        "title": dataset_title(name),
        "anchor": f"seed-{seed}-{re.sub(r'[^A-Za-z0-9_-]', '_', name)}",
        "n": metrics["n"],
        "n_correct": metrics["n_correct"],
        "n_errors": len(errors),
        "accuracy": accuracy_text(metrics["accuracy"], metrics["n_correct"], metrics["n"]),
        "balanced_accuracy": pct(metrics["balanced_accuracy"]),
        "macro_f1": num(metrics["macro_f1"]),
        "mean_loss": num(metrics.get("mean_loss"), 4),
        "classes_present": present,
        "n_classes": len(classes),
        "per_class": _per_class(metrics, mpath),
        "confusion": _confusion(metrics, mpath),
        "errors": errors,
        "figures": {k: png_data_uri(folder / f"{k}.png") for k in ("confusion", "per_class")},
        "gallery": [png_data_uri(page) for page in _gallery_pages(folder / "errors")],
        # raw values for the across-seed table
        "_raw": {k: metrics[k] for k in ("accuracy", "balanced_accuracy", "macro_f1")},
    }


def _seed(results_dir: Path, seed: int, datasets: list[str]) -> dict:
    folder = results_dir / "seeds" / str(seed)
    tpath = folder / "train.json"
    train = _read_json(tpath)
    phases = _phase_rows(train, tpath)
    hpath = folder / "history.csv"
    history = _read_csv(hpath, ["phase", "epoch", "phase_epoch", "train_loss", "valid_loss", "accuracy", "seconds"])
    for ph, extra in zip(phases, _history_extras(history, phases, hpath)):
        ph.update(extra)
    return {
        "seed": seed,
        "anchor": f"seed-{seed}",
        "split_seed": train.get("split_seed", DASH),
        "device": train.get("device", DASH),
        "threads": train.get("threads", DASH),
        "n_train": train.get("n_train", DASH),
        "n_valid": train.get("n_valid", DASH),
        "seconds": seconds(_key(train, "seconds", tpath)),
        "hms": hms(train["seconds"]),
        "phases": phases,
        "epochs_run": " + ".join(str(p["epochs_run"]) for p in phases),
        "best_epochs": ", ".join(str(p["best_epoch"]) for p in phases),
        "loss_curves": png_data_uri(folder / "loss_curves.png"),
        "datasets": [_dataset(results_dir, seed, name) for name in datasets],
        "_recipe": _recipe(train, tpath),
        "_seconds": float(train["seconds"]),
    }


def _summary(seeds: list[dict], datasets: list[str]) -> dict:
    rows = []
    for s in seeds:
        rows.append({"seed": s["seed"], "epochs_run": s["epochs_run"], "best_epochs": s["best_epochs"],
                     "seconds": s["seconds"],
                     "cells": [{k: d[k] for k in ("accuracy", "balanced_accuracy", "macro_f1")}
                               for d in s["datasets"]]})
    mean = None
    if len(seeds) >= 2:
        cells = []
        for i, _ in enumerate(datasets):
            raw = [s["datasets"][i]["_raw"] for s in seeds]
            cells.append({"accuracy": mean_sd([r["accuracy"] for r in raw], "pct"),
                          "balanced_accuracy": mean_sd([r["balanced_accuracy"] for r in raw], "pct"),
                          "macro_f1": mean_sd([r["macro_f1"] for r in raw], "num")})
        mean = {"cells": cells, "seconds": mean_sd([s["_seconds"] for s in seeds], "seconds")}
    return {"datasets": [{"name": d, "title": dataset_title(d)} for d in datasets], "rows": rows, "mean": mean}


def _data(results_dir: Path, datasets: list[str], classes: list[str], citation: str) -> dict:
    spath = results_dir / "data" / "split.csv"
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
        external.append({"name": name,
                         "rows": [{"label": c, "count": int(counts.get(c, 0))} for c in labels],
                         "total": int(len(ext))})
    return {"citation": citation, "split_rows": split_rows, "n_images": int(len(split)), "external": external}


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


def build_context(results_dir: str | Path, config: dict, seeds: list[int], datasets: list[str],
                  run_info: RunInfo) -> dict:
    """Everything the template shows, formatted, from the files of docs/results.md."""
    results_dir = Path(results_dir)
    seeds = [int(s) for s in seeds]
    datasets = [str(d) for d in datasets]
    if not seeds:
        raise LeukoError("seeds: no seeds to report")
    if not datasets:
        raise LeukoError("datasets: no datasets to report")
    config = dict(config or {})
    weights = _weights(results_dir)
    seed_ctx = [_seed(results_dir, s, datasets) for s in seeds]
    classes = seed_ctx[0]["datasets"][0]["per_class"]
    classes = [r["label"] for r in classes]
    notes = []
    recipe = seed_ctx[0]["_recipe"]
    for s in seed_ctx[1:]:
        if s["_recipe"] != recipe:
            notes.append(f"seed {s['seed']} was trained with a different recipe from seed {seed_ctx[0]['seed']}; "
                         f"see its section")
    citation = str(config.get("data_citation") or DEFAULT_CITATION)
    return {
        "title": TITLE,
        "run": {"date": run_info.date, "git_commit": run_info.git_commit, "device": run_info.device,
                "python": run_info.python,
                "packages": [{"name": k, "version": v} for k, v in run_info.packages.items()]},
        "weights": weights,
        "recipe": recipe,
        "config_yaml": config_yaml(config),
        "benchmarks": _benchmarks(results_dir),
        "data": _data(results_dir, datasets, classes, citation),
        "classes": classes,
        "seeds": seed_ctx,
        "summary": _summary(seed_ctx, datasets),
        "notes": notes,
    }


# --------------------------------------------------------------------------- rendering and writing

def make_environment(templates_dir: str | Path) -> Environment:
    """Jinja2 environment that escapes everything and fails on undefined names."""
    return Environment(loader=FileSystemLoader(str(templates_dir)), autoescape=True,
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def render_html(context: dict, templates_dir: str | Path) -> str:
    """The report as one self-contained HTML string (CSS inlined, figures as data URIs)."""
    templates_dir = Path(templates_dir)
    css_path = templates_dir / STYLESHEET
    css = css_path.read_text(encoding="utf-8") if css_path.is_file() else ""
    if "</style" in css.lower():
        raise LeukoError(f"{css_path.as_posix()}: must not contain '</style'")
    env = make_environment(templates_dir)
    return env.get_template(TEMPLATE).render(**context, css=Markup(css))


def write_html(html: str, out: str | Path) -> None:
    """Write the HTML atomically."""
    write_text(html, out)


def write_pdf(html_path: str | Path, pdf_path: str | Path) -> None:
    """Render report.html to PDF with WeasyPrint, atomically."""
    html_path = Path(html_path)
    if not html_path.is_file():
        raise LeukoError(f"{html_path.as_posix()}: file not found (needed to write {Path(pdf_path).as_posix()})")
    import weasyprint  # lazy: slow import

    with atomic_path(pdf_path) as tmp:
        weasyprint.HTML(filename=str(html_path)).write_pdf(tmp)
