"""The real Snakemake workflow on the smoke config, and its one-line errors on bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from conftest import ROOT, make_image_folder

pytestmark = pytest.mark.slow
PROJECT_FILES = ["Snakefile", "workflow", "config", "templates", "data"]


def copy_project(dest: Path) -> Path:
    """A copy of the workflow and its data, as a fresh clone would have it (no results)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / name)
    return dest


def snakemake(project: Path, *args: str, env: dict | None = None, timeout: int = 900):
    """Run snakemake in ``project``; returns the completed process (stdout and stderr merged)."""
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    project = copy_project(tmp_path_factory.mktemp("smoke") / "project")
    start = time.perf_counter()
    proc = snakemake(project, "--cores", "2", "--configfile", "config/smoke.yaml")
    print(f"smoke workflow: {time.perf_counter() - start:.1f} s")
    assert proc.returncode == 0, proc.stdout[-5000:]
    return project, yaml.safe_load((project / "config" / "smoke.yaml").read_text())


def recompute(pred: pd.DataFrame, classes: list[str]) -> dict:
    """Metrics from predictions.csv, computed here with plain numpy (independent of leukoreport.metrics)."""
    y, p = pred["label"].to_numpy(), pred["prediction"].to_numpy()
    per_class, recalls, f1s = {}, [], []
    for c in classes:
        tp, support, predicted = int(((y == c) & (p == c)).sum()), int((y == c).sum()), int((p == c).sum())
        if support == 0:
            per_class[c] = {"present": False, "support": 0, "predicted": predicted,
                            "precision": None, "recall": None, "f1": None}
            continue
        precision = tp / predicted if predicted else 0.0
        recall = tp / support
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[c] = {"present": True, "support": support, "predicted": predicted,
                        "precision": precision, "recall": recall, "f1": f1}
        recalls.append(recall)
        f1s.append(f1)
    return {
        "n": len(y), "n_correct": int((y == p).sum()), "accuracy": float((y == p).mean()),
        "balanced_accuracy": float(np.mean(recalls)), "macro_f1": float(np.mean(f1s)),
        "mean_loss": float(pred["loss"].mean()), "per_class": per_class,
        "confusion_matrix": [[int(((y == a) & (p == b)).sum()) for b in classes] for a in classes],
    }


def test_metrics_equal_recomputation_from_predictions(smoke_run):
    project, cfg = smoke_run
    datasets = ["test", *cfg["external"]]
    split = pd.read_csv(project / "results/data/split.csv")
    for seed in cfg["seeds"]:
        for dataset in datasets:
            folder = project / f"results/seeds/{seed}/{dataset}"
            metrics = json.loads((folder / "metrics.json").read_text())
            pred = pd.read_csv(folder / "predictions.csv")
            classes = metrics["classes"]
            assert classes == sorted(split["label"].unique())
            if dataset == "test":
                assert sorted(pred["path"]) == sorted(split.loc[split["split"] == "test", "path"])
            probs = pred[[f"prob_{c}" for c in classes]].to_numpy()
            np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
            assert list(pred["prediction"]) == [classes[i] for i in probs.argmax(axis=1)]
            true_p = probs[np.arange(len(pred)), [classes.index(l) for l in pred["label"]]]
            np.testing.assert_allclose(pred["loss"], -np.log(true_p), rtol=1e-6)
            expected = recompute(pred, classes)
            for key in ["n", "n_correct", "accuracy", "balanced_accuracy", "macro_f1", "mean_loss"]:
                assert metrics[key] == pytest.approx(expected[key]), (seed, dataset, key)
            assert metrics["confusion_matrix"]["matrix"] == expected["confusion_matrix"]
            for c in classes:
                got, want = metrics["per_class"][c], expected["per_class"][c]
                assert got.keys() >= want.keys()
                for k, v in want.items():
                    assert got[k] == (pytest.approx(v) if isinstance(v, float) else v), (seed, dataset, c, k)
    external = json.loads((project / "results/seeds/1/external_monocyte/metrics.json").read_text())
    assert external["classes_present"] == ["monocyte"] and external["per_class"]["basophil"]["present"] is False


def test_smoke_outputs_follow_the_config(smoke_run):
    project, cfg = smoke_run
    split = pd.read_csv(project / "results/data/split.csv")
    counts = split.groupby(["label", "split"]).size().unstack()
    assert (counts.sum(axis=1) == cfg["max_per_class"]).all()
    assert (counts["test"] >= 1).all() and (counts["valid"] >= 1).all()
    for seed in cfg["seeds"]:
        history = pd.read_csv(project / f"results/seeds/{seed}/history.csv")
        info = json.loads((project / f"results/seeds/{seed}/train.json").read_text())
        assert info["seed"] == seed and info["size"] == cfg["size"] and info["pretrained"] is False
        budget = [cfg["phases"]["frozen"]["max_epochs"], cfg["phases"]["unfrozen"]["max_epochs"]]
        for phase, max_epochs in zip(info["phases"], budget):
            assert phase["max_epochs"] == max_epochs
            assert 1 <= phase["epochs_run"] == (history["phase"] == phase["phase"]).sum() <= max_epochs
    weights = json.loads((project / "results/weights/resnet18.json").read_text())
    assert weights["pretrained"] is False and "random" in weights["init"]


def test_reports_mention_every_seed_and_dataset(smoke_run):
    from pypdf import PdfReader

    project, cfg = smoke_run
    html = (project / "results/report/report.html").read_text()
    pdf = project / "results/report/report.pdf"
    assert pdf.stat().st_size > 10_000
    text = "\n".join(page.extract_text() for page in PdfReader(pdf).pages)
    for seed in cfg["seeds"]:
        assert f"Seed {seed}" in html and f"Seed {seed}" in text
    for dataset in ["test", *cfg["external"]]:
        assert dataset in html and dataset in text
    assert "random (pretrained: false)" in html


def test_model_loads_with_load_learner_alone(smoke_run):
    project, _ = smoke_run
    model = project / "results/seeds/1/model.pkl"
    image = next((project / "data/external_monocyte/monocyte").iterdir())
    code = (
        "import sys; sys.modules['leukoreport'] = None\n"
        "from fastai.vision.all import load_learner\n"
        f"learn = load_learner({str(model)!r})\n"
        f"pred, idx, probs = learn.predict({str(image)!r})\n"
        "print('PRED', pred, len(probs))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert any(line.startswith("PRED ") and line.endswith(" 5") for line in proc.stdout.splitlines())


def test_dry_run_plans_default_three_seeds(tmp_path):
    project = copy_project(tmp_path / "project")
    proc = snakemake(project, "-n", "--cores", "4")
    assert proc.returncode == 0, proc.stdout[-3000:]
    jobs = dict(
        line.split()[:2] for line in proc.stdout.splitlines() if len(line.split()) == 2 and line.split()[1].isdigit()
    )
    assert jobs["train"] == "3" and jobs["evaluate"] == "6" and jobs["weights"] == "1"


# ---- bad input: the run stops with one line naming the file or key, and leaves nothing that looks done


@pytest.fixture
def bad_project(tmp_path):
    """A project copy with small synthetic data (3 classes x 6 images) and an external set."""
    project = copy_project_light(tmp_path / "project")
    make_image_folder(project / "images", per_class=6, size=24)
    make_image_folder(project / "external", per_class=2, size=30, classes={"beta": (40, 200, 40)})
    return project


def copy_project_light(dest: Path) -> Path:
    """Like ``copy_project`` but without the embedded data (bad-input runs bring their own)."""
    dest.mkdir(parents=True)
    for name in ["Snakefile", "workflow", "config", "templates"]:
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, dest / name)
    return dest


def run_data_rules(project: Path, **overrides):
    cfg = yaml.safe_load((project / "config" / "smoke.yaml").read_text())
    cfg.update(data_dir="images", external={"ext": "external"}, max_per_class=None)
    cfg.update(overrides)
    (project / "bad.yaml").write_text(yaml.safe_dump(cfg))
    names = list(cfg["external"]) if isinstance(cfg.get("external"), dict) else []
    targets = ["results/data/split.csv", *[f"results/data/external/{n}.csv" for n in names]]
    return snakemake(project, "--cores", "1", *targets, "--configfile", "bad.yaml")


def assert_one_line_error(proc, needle: str):
    assert proc.returncode != 0
    lines = [line for line in proc.stdout.splitlines() if needle in line]
    assert lines, proc.stdout[-3000:]


def test_good_synthetic_data_passes(bad_project):
    proc = run_data_rules(bad_project)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert (bad_project / "results/data/external/ext.csv").is_file()


def test_corrupt_image(bad_project):
    (bad_project / "images/alpha/alpha_00.png").write_bytes(os.urandom(500))
    proc = run_data_rules(bad_project)
    assert_one_line_error(proc, "error: images/alpha/alpha_00.png: not an image file")
    assert not (bad_project / "results/data/split.csv").exists()


def test_truncated_image(bad_project):
    path = bad_project / "images/beta/beta_01.jpg"
    Image.new("RGB", (64, 64), (10, 120, 200)).save(path, quality=95)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    proc = run_data_rules(bad_project)
    assert_one_line_error(proc, "error: images/beta/beta_01.jpg: corrupt or truncated image")
    assert not (bad_project / "results/data/split.csv").exists()


def test_non_image_file(bad_project):
    (bad_project / "images/gamma/notes.txt").write_text("not a cell")
    proc = run_data_rules(bad_project)
    assert_one_line_error(proc, "error: images/gamma/notes.txt: not an image file")


def test_empty_class_folder(bad_project):
    (bad_project / "images/delta").mkdir()
    proc = run_data_rules(bad_project)
    assert_one_line_error(proc, "error: images/delta: empty class folder")


def test_unknown_external_class(bad_project):
    make_image_folder(bad_project / "external", per_class=1, size=30, classes={"omega": (1, 2, 3)})
    proc = run_data_rules(bad_project)
    assert_one_line_error(proc, "error: external/omega: class 'omega' is not a training class")
    assert (bad_project / "results/data/split.csv").is_file()
    assert not (bad_project / "results/data/external/ext.csv").exists()


def test_missing_folder(bad_project):
    proc = run_data_rules(bad_project, external={"ext": "no_such_folder"})
    assert_one_line_error(proc, "config key external.ext: folder not found: no_such_folder")


def test_invalid_config_value(bad_project):
    proc = run_data_rules(bad_project, batch_size=0)
    assert_one_line_error(proc, "config key batch_size: 0 is less than the minimum of 1")


def test_missing_pretrained_weights_stop_before_training(bad_project, tmp_path):
    cfg = yaml.safe_load((bad_project / "config" / "smoke.yaml").read_text())
    cfg.update(data_dir="images", external={}, max_per_class=None, pretrained=True, download_weights=False)
    (bad_project / "pre.yaml").write_text(yaml.safe_dump(cfg))
    torch_home = tmp_path / "empty_torch_home"
    proc = snakemake(bad_project, "--cores", "1", "results/seeds/1/model.pkl", "--configfile", "pre.yaml",
                     env={"TORCH_HOME": str(torch_home)})
    expected = torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert_one_line_error(proc, f"error: {expected}: ImageNet weights")
    assert "pretrained: false" in proc.stdout
    assert not (bad_project / "results/logs/train_seed1.log").exists()
    assert not (bad_project / "results/weights/resnet18.json").exists()


def test_lint_is_clean():
    proc = snakemake(ROOT, "--lint")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "Lints for" not in proc.stdout
    assert "Congratulations, your workflow is in a good condition!" in proc.stdout
