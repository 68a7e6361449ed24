"""Shared fixtures: tiny synthetic ImageFolder data sets that train in seconds, predictions tables and metrics,
fake run folders for comparisons, and a copy of the project for workflow runs."""

from __future__ import annotations

import importlib.util
import math
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

if TYPE_CHECKING:
    from leukoreport.training.two_phase import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILES = ["Snakefile", "workflow", "config", "templates", "data"]
COLOURS = {"alpha": (200, 40, 40), "beta": (40, 200, 40), "gamma": (40, 40, 200)}


def _make_image_folder(root: Path, per_class: int = 8, size: int = 40, seed: int = 0, classes=COLOURS) -> Path:
    """Write an ImageFolder of noisy colour squares, one colour per class."""
    rng = np.random.default_rng(seed)
    for name, colour in classes.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = np.clip(np.array(colour) + rng.normal(0, 30, (size, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{name}_{i:02d}.png")
    return root


@pytest.fixture(scope="session")
def tiny_split(tmp_path_factory) -> pd.DataFrame:
    """A split.csv-like frame over a tiny synthetic data set (3 classes x 10 images)."""
    from leukoreport.data.images import discover
    from leukoreport.data.split import stratified_split

    root = _make_image_folder(tmp_path_factory.mktemp("tiny") / "images", per_class=10)
    return stratified_split(discover(root), (0.6, 0.2, 0.2), seed=42)


@pytest.fixture(scope="session")
def make_image_folder():
    """``make_image_folder(root, per_class=8, size=40, seed=0, classes=COLOURS)``: an ImageFolder of noisy colour
    squares, one colour per class; returns `root`."""
    return _make_image_folder


def _copy_project(dest: Path) -> Path:
    """A copy of the workflow and its data, as a fresh clone would have it (no results)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / name)
    return dest


@pytest.fixture(scope="session")
def copy_project():
    """``copy_project(dest)``: copy the workflow and its data to `dest` (no results); returns `dest`."""
    return _copy_project


# --------------------------------------------------------------------------- tiny training config

def tiny_train_config(**overrides: Any) -> TrainConfig:
    """The tests' tiny CPU training config (32 px, batch 8, no pretraining, two 1-epoch phases, fp32, 0 workers),
    with `overrides` replacing any of its keys."""
    from leukoreport.training.two_phase import PhaseConfig, TrainConfig

    keys = {"size": 32, "batch_size": 8, "pretrained": False,
            "phases": [PhaseConfig(True, 1e-2, 1, 1), PhaseConfig(False, 1e-3, 1, 1)], "device": "cpu",
            "num_workers": 0, "precision": "fp32", "channels_last": False}
    return TrainConfig.defaults(**{**keys, **overrides})


# --------------------------------------------------------------------------- predictions tables and metrics

def _make_pred(labels: list[str], preds: list[str], classes: list[str],
               losses: list[float] | None = None) -> pd.DataFrame:
    """A predictions table: 0.9 on the predicted class, the rest shared evenly."""
    rest = 0.1 / (len(classes) - 1)
    rows = []
    for i, (y, p) in enumerate(zip(labels, preds)):
        row = {"path": f"data/img_{i}.jpg", "label": y, "prediction": p}
        row.update({f"prob_{c}": (0.9 if c == p else rest) for c in classes})
        row["loss"] = losses[i] if losses is not None else 0.1
        rows.append(row)
    return pd.DataFrame(rows)


@pytest.fixture(scope="session")
def make_pred():
    """``make_pred(labels, preds, classes, losses=None)``: a predictions table, 0.9 on the predicted class."""
    return _make_pred


METRIC_CLASSES = ["a", "b", "c"]


def _fake_metrics(seed: int, dataset: str, right: int, n: int, label: str = "a") -> dict:
    from leukoreport.config.settings import Uncertainty
    from leukoreport.stats.metrics import compute_metrics

    labels = [label] * n
    preds = [label] * right + ["b" if label != "b" else "c"] * (n - right)
    return compute_metrics(_make_pred(labels, preds, METRIC_CLASSES), METRIC_CLASSES, dataset, seed,
                           Uncertainty.defaults(n_resamples=999), split_seed=42)


@pytest.fixture(scope="session")
def fake_metrics():
    """``fake_metrics(seed, dataset, right, n, label="a")``: metrics.json content of `n` images of `label` (classes
    a, b, c), `right` of them right, split seed 42."""
    return _fake_metrics


# --------------------------------------------------------------------------- fake runs for comparisons

CLASSES = ["basophil", "eosinophil", "lymphocyte", "monocyte", "neutrophil"]
PER_CLASS = 40  # 200 test images
SEEDS = (1, 2, 3)
SPLIT = 42
# run A = run B with PLANTED[seed] images that B gets right made wrong, and FIXED[seed] of B's errors made right
PLANTED = {1: 30, 2: 25, 3: 35}
FIXED = {1: 3, 2: 1, 3: 4}


# --------------------------------------------------------------------------- fake runs

def image_list(split_seed: int = SPLIT, classes=CLASSES, per_class: int = PER_CLASS) -> pd.DataFrame:
    """path,label of a test split: per_class images of each class."""
    rows = [{"path": f"data/leukocytes/{c}/{c}_{split_seed}_{i:03d}.jpg", "label": c}
            for c in classes for i in range(per_class)]
    return pd.DataFrame(rows)


def baseline_predictions(seed: int, split_seed: int = SPLIT, classes=CLASSES) -> pd.DataFrame:
    """path,label,prediction with a few seed-dependent errors (labels shifted to the next class)."""
    df = image_list(split_seed, classes)
    rng = np.random.default_rng(1000 * split_seed + seed)
    wrong = rng.choice(len(df), size=5 + seed, replace=False)
    pred = df["label"].copy()
    for i in wrong:
        pred.iloc[i] = classes[(classes.index(df["label"].iloc[i]) + 1) % len(classes)]
    return df.assign(prediction=pred)


def worsen(pred: pd.DataFrame, n_wrong: int, n_fixed: int, seed: int, classes=CLASSES) -> pd.DataFrame:
    """Copy of `pred` with n_wrong correct images switched to wrong and n_fixed wrong images made right."""
    out = pred.copy()
    rng = np.random.default_rng(seed)
    right = np.flatnonzero(out["label"] == out["prediction"])
    wrong = np.flatnonzero(out["label"] != out["prediction"])
    for i in rng.choice(right, size=n_wrong, replace=False):
        label = out["label"].iloc[i]
        out.iloc[i, out.columns.get_loc("prediction")] = classes[(classes.index(label) + 2) % len(classes)]
    for i in rng.choice(wrong, size=n_fixed, replace=False):
        out.iloc[i, out.columns.get_loc("prediction")] = out["label"].iloc[i]
    return out


def write_run(root: Path, predictions: dict, classes=CLASSES, layout: str = "project",
              dataset: str = "test") -> Path:
    """A run folder: results/summary/metrics.csv indexing one predictions.csv per (split_seed, seed).

    `predictions` maps (split_seed, seed) to a frame path,label,prediction; layout 'project' puts the files
    under root/results, 'results' directly under root. Returns the folder to pass to load_run.
    """
    results = root / "results" if layout == "project" else root
    rows = []
    for (split_seed, seed), pred in predictions.items():
        probs = np.full((len(pred), len(classes)), 0.2 / (len(classes) - 1))
        for i, p in enumerate(pred["prediction"]):
            probs[i, classes.index(p)] = 0.8
        out = pred[["path", "label", "prediction"]].copy()
        for j, c in enumerate(classes):
            out[f"prob_{c}"] = probs[:, j]
        out["loss"] = [-math.log(probs[i, classes.index(t)]) for i, t in enumerate(pred["label"])]
        rows.append(save_predictions(results, split_seed, seed, dataset, out))
    write_index(results, rows)
    return root


def save_predictions(results: Path, split_seed: int, seed: int, dataset: str, pred: pd.DataFrame) -> dict:
    """Write one run's predictions.csv under `results`; returns its row of summary/metrics.csv."""
    rel = f"splits/{split_seed}/seeds/{seed}/{dataset}/predictions.csv"
    (results / rel).parent.mkdir(parents=True, exist_ok=True)
    pred.to_csv(results / rel, index=False)
    n_correct = int((pred["label"] == pred["prediction"]).sum())
    return {"split_seed": split_seed, "seed": seed, "dataset": dataset, "n": len(pred),
            "n_correct": n_correct, "accuracy": n_correct / len(pred), "predictions": rel}


def write_index(results: Path, rows: list[dict]) -> None:
    """summary/metrics.csv with the rows of save_predictions."""
    (results / "summary").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(results / "summary" / "metrics.csv", index=False)


def baseline_run(root: Path, seeds=SEEDS, **kwargs) -> Path:
    return write_run(root, {(SPLIT, s): baseline_predictions(s) for s in seeds}, **kwargs)


def worse_run(root: Path, seeds=SEEDS, **kwargs) -> Path:
    return write_run(root, {(SPLIT, s): worsen(baseline_predictions(s), PLANTED[s], FIXED[s], seed=s)
                            for s in seeds}, **kwargs)


@pytest.fixture(scope="session")
def fake_runs() -> SimpleNamespace:
    """Synthetic run folders whose comparison is known: constants (CLASSES, PER_CLASS, SEEDS, SPLIT, PLANTED, FIXED)
    and builders (image_list, baseline_predictions, worsen, write_run, save_predictions, write_index, baseline_run,
    worse_run)."""
    return SimpleNamespace(
        CLASSES=CLASSES, PER_CLASS=PER_CLASS, SEEDS=SEEDS, SPLIT=SPLIT, PLANTED=PLANTED, FIXED=FIXED,
        image_list=image_list, baseline_predictions=baseline_predictions, worsen=worsen, write_run=write_run,
        save_predictions=save_predictions, write_index=write_index, baseline_run=baseline_run, worse_run=worse_run)


@pytest.fixture(scope="session")
def shifted_sets():
    """scripts/shifted_sets.py as a module: the stain, blur, scale and brightness shifts of other labs' images."""
    spec = importlib.util.spec_from_file_location("shifted_sets", ROOT / "scripts" / "shifted_sets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
