"""The real Snakemake workflow on the smoke config, and its one-line errors on bad input."""

from __future__ import annotations

import html as html_module
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

from leukoreport.training.device import resolve_precision

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

SMOKE_PER_CLASS = 20


def make_smoke_data(project: Path) -> dict:
    """20 real images per class under smoke_data/, plus planted leakage and a mixed-format external set.

    - an exact duplicate (PNG re-save) of a basophil image, named so that the split puts it in another split;
    - external set ``mixed``: a resized BMP copy of a training neutrophil (near duplicate, different size), a PNG
      eosinophil and a TIFF lymphocyte; basophil and monocyte are missing.
    """
    from leukoreport.data.images import discover
    from leukoreport.data.split import stratified_split

    src, dst = project / "data" / "leukocytes", project / "smoke_data"
    for folder in sorted(src.iterdir()):
        (dst / folder.name).mkdir(parents=True)
        for f in sorted(folder.iterdir())[:SMOKE_PER_CLASS]:
            shutil.copy2(f, dst / folder.name / f.name)

    def split_of() -> dict:
        split = stratified_split(discover(dst), (0.7, 0.15, 0.15), seed=42)
        return {Path(p).name: s for p, s in zip(split["path"], split["split"])}

    for original in sorted((dst / "basophil").iterdir()):
        copy = dst / "basophil" / f"zz_copy_of_{original.stem}.png"
        with Image.open(original) as img:
            img.convert("RGB").save(copy)
        where = split_of()
        if where[original.name] != where[copy.name]:
            break
        copy.unlink()
    else:
        raise AssertionError("no basophil duplicate lands in another split")

    train_neutrophil = next(n for n, s in sorted(where.items()) if s == "train" and "NE_" in n)
    mixed = project / "mixed_external"
    for label in ("neutrophil", "eosinophil", "lymphocyte"):
        (mixed / label).mkdir(parents=True)
    with Image.open(dst / "neutrophil" / train_neutrophil) as img:
        img.convert("RGB").resize((300, 290)).save(mixed / "neutrophil" / "resized_copy.bmp")
    with Image.open(sorted((src / "eosinophil").iterdir())[SMOKE_PER_CLASS + 5]) as img:
        img.convert("RGB").save(mixed / "eosinophil" / "eosinophil.png")
    with Image.open(sorted((src / "lymphocyte").iterdir())[SMOKE_PER_CLASS + 6]) as img:
        img.convert("RGB").resize((200, 210)).save(mixed / "lymphocyte" / "lymphocyte.tif")
    make_shifted_sets(src, project)
    return {"original": f"smoke_data/basophil/{original.name}", "copy": f"smoke_data/basophil/{copy.name}",
            "train_neutrophil": f"smoke_data/neutrophil/{train_neutrophil}",
            "bmp": "mixed_external/neutrophil/resized_copy.bmp", "splits": where}


SHIFTED_PER_CLASS = 4  # images per class in each derived external set (not among the training images)


def make_shifted_sets(src: Path, project: Path) -> None:
    """Three external sets from the same unseen embedded images: unchanged, stain-shifted (more haematoxylin, less
    eosin), and blurred and rescaled to 60%, as another lab's scanner might give."""
    from PIL import ImageFilter
    from skimage.color import hed2rgb, rgb2hed

    for folder in sorted(src.iterdir()):
        # other labs name folders their way: 'segmented' (config class_aliases) and capitalised names
        names = {"ext_plain": folder.name, "ext_stain": "segmented" if folder.name == "neutrophil" else folder.name,
                 "ext_blur": folder.name.capitalize()}
        for f in sorted(folder.iterdir())[SMOKE_PER_CLASS + 20:SMOKE_PER_CLASS + 20 + SHIFTED_PER_CLASS]:
            for kind in ("ext_plain", "ext_stain", "ext_blur"):
                (project / kind / names[kind]).mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, project / "ext_plain" / folder.name / f.name)
            with Image.open(f) as img:
                rgb = img.convert("RGB")
            hed = rgb2hed(np.asarray(rgb, dtype=np.float64) / 255.0)
            hed[..., 0] *= 1.8
            hed[..., 1] *= 0.3
            Image.fromarray((np.clip(hed2rgb(hed), 0, 1) * 255).round().astype(np.uint8)).save(
                project / "ext_stain" / names["ext_stain"] / f"{f.stem}.png")
            small = rgb.filter(ImageFilter.GaussianBlur(2)).resize((int(rgb.width * 0.6), int(rgb.height * 0.6)))
            small.save(project / "ext_blur" / names["ext_blur"] / f"{f.stem}.png")


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, copy_project, snakemake):
    project = copy_project(tmp_path_factory.mktemp("smoke") / "project")
    planted = make_smoke_data(project)
    cfg = yaml.safe_load((project / "config" / "smoke.yaml").read_text())
    cfg.update(data_dir="smoke_data", max_per_class=None,
               external={"external_monocyte": "data/external_monocyte", "mixed": "mixed_external",
                         "ext_plain": {"path": "ext_plain", "source": cfg["data_provenance"]["source"]},
                         "ext_stain": {"path": "ext_stain", "source": "simulated second laboratory",
                                       "stain": "haematoxylin-heavy (simulated)"},
                         "ext_blur": "ext_blur"},
               class_aliases={"Segmented": "neutrophil"})
    (project / "test.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    start = time.perf_counter()
    proc = snakemake(project, "--cores", "2", "--configfile", "test.yaml")
    print(f"smoke workflow: {time.perf_counter() - start:.1f} s")
    assert proc.returncode == 0, proc.stdout[-5000:]
    return project, cfg, planted


def recompute(pred: pd.DataFrame, classes: list[str]) -> dict:
    """Metrics from predictions.csv, computed here with plain numpy (independent of leukoreport.stats.metrics)."""
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
    project, cfg, _ = smoke_run
    datasets = ["test", *cfg["external"]]
    split = pd.read_csv(project / "results/splits/42/split.csv")
    for seed in cfg["seeds"]:
        for dataset in datasets:
            folder = project / f"results/splits/42/seeds/{seed}/{dataset}"
            metrics = json.loads((folder / "metrics.json").read_text())
            pred = pd.read_csv(folder / "predictions.csv")
            classes = metrics["classes"]
            assert classes == sorted(split["label"].unique())
            if dataset == "test":
                assert sorted(pred["path"]) == sorted(split.loc[split["split"] == "test", "path"])
            probs = pred[[f"prob_{c}" for c in classes]].to_numpy()
            np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
            assert list(pred["prediction"]) == [classes[i] for i in probs.argmax(axis=1)]
            true_p = probs[np.arange(len(pred)), [classes.index(label) for label in pred["label"]]]
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
    external = json.loads((project / "results/splits/42/seeds/1/external_monocyte/metrics.json").read_text())
    assert external["classes_present"] == ["monocyte"] and external["per_class"]["basophil"]["present"] is False


def test_smoke_outputs_follow_the_config(smoke_run):
    project, cfg, _ = smoke_run
    split = pd.read_csv(project / "results/splits/42/split.csv")
    counts = split.groupby(["label", "split"]).size().unstack()
    on_disk = {f.name: len(list(f.iterdir())) for f in (project / cfg["data_dir"]).iterdir()}
    assert counts.sum(axis=1).to_dict() == on_disk and on_disk["basophil"] == SMOKE_PER_CLASS + 1
    assert (counts["test"] >= 1).all() and (counts["valid"] >= 1).all()
    for seed in cfg["seeds"]:
        history = pd.read_csv(project / f"results/splits/42/seeds/{seed}/history.csv")
        info = json.loads((project / f"results/splits/42/seeds/{seed}/train.json").read_text())
        assert info["seed"] == seed and info["size"] == cfg["size"] and info["pretrained"] is False
        # precision: auto resolves on this machine's CPU (bf16 autocast where it has AMX, else fp32)
        assert info["precision"] == resolve_precision(cfg["precision"], "cpu") and info["lean_loop"] is True
        budget = [cfg["phases"]["frozen"]["max_epochs"], cfg["phases"]["unfrozen"]["max_epochs"]]
        for phase, max_epochs in zip(info["phases"], budget):
            assert phase["max_epochs"] == max_epochs
            assert 1 <= phase["epochs_run"] == (history["phase"] == phase["phase"]).sum() <= max_epochs
    weights = json.loads((project / "results/weights/resnet18.json").read_text())
    assert weights["pretrained"] is False and "random" in weights["init"]


def test_reports_mention_every_seed_and_dataset(smoke_run):
    from pypdf import PdfReader

    project, cfg, _ = smoke_run
    html = (project / "results/report/report.html").read_text()
    pdf = project / "results/report/report.pdf"
    assert pdf.stat().st_size > 10_000
    text = "\n".join(page.extract_text() for page in PdfReader(pdf).pages)
    for seed in cfg["seeds"]:
        assert f"Seed {seed}" in html and f"Seed {seed}" in text
    for dataset in ["test", *cfg["external"]]:
        assert dataset in html and dataset in text
    assert "random (pretrained: false)" in html
    precision = json.loads((project / f"results/splits/42/seeds/{cfg['seeds'][0]}/train.json").read_text())["precision"]
    assert f"precision {precision}" in html


def test_intervals_in_metrics_match_scipy_wilson(smoke_run):
    from scipy.stats import binomtest

    project, cfg, _ = smoke_run
    for seed in cfg["seeds"]:
        for dataset in ["test", *cfg["external"]]:
            m = json.loads((project / f"results/splits/42/seeds/{seed}/{dataset}/metrics.json").read_text())
            ci = binomtest(m["n_correct"], m["n"]).proportion_ci(method="wilson")
            acc = m["intervals"]["accuracy"]
            assert (acc["low"], acc["high"]) == pytest.approx((ci.low, ci.high)), (seed, dataset)
            for _c, pc in m["per_class"].items():
                if pc["present"]:
                    ci = binomtest(pc["correct"], pc["support"]).proportion_ci(method="wilson")
                    assert (pc["recall_low"], pc["recall_high"]) == pytest.approx((ci.low, ci.high))
            boot = m["intervals"]["macro_f1"]
            assert boot["n_resamples"] == cfg["bootstrap_resamples"] and boot["method"] == "BCa"
            assert boot["degenerate"] or boot["low"] <= m["macro_f1"] <= boot["high"]
            pred = pd.read_csv(project / f"results/splits/42/seeds/{seed}/{dataset}/predictions.csv")
            probs = pred[[f"prob_{c}" for c in m["classes"]]].to_numpy()
            truth = np.array([m["classes"].index(label) for label in pred["label"]])
            brier = ((probs - np.eye(len(m["classes"]))[truth]) ** 2).sum(axis=1).mean()
            assert m["calibration"]["brier"] == pytest.approx(brier)
            assert sum(b["count"] for b in m["calibration"]["bins"]) == m["n"]
    table = pd.read_csv(project / "results/summary/metrics.csv")
    assert len(table) == len(cfg["seeds"]) * (1 + len(cfg["external"]))


def test_leakage_audit_reports_planted_duplicates(smoke_run):
    project, _, planted = smoke_run
    pairs = pd.read_csv(project / "results/splits/42/audit/leakage.csv")
    split = pd.read_csv(project / "results/splits/42/split.csv").set_index("path")["split"]
    found = {(r["path_a"], r["path_b"]): r for _, r in pairs.iterrows()}
    across = found[tuple(sorted([planted["original"], planted["copy"]],
                                key=lambda p: ["train", "valid", "test"].index(split[p])))]
    assert (across["kind"], across["scope"], across["distance"]) == ("exact", "across splits", 0)
    assert {across["group_a"], across["group_b"]} == {split[planted["original"]], split[planted["copy"]]}
    external = found[(planted["train_neutrophil"], planted["bmp"])]
    assert (external["scope"], external["group_a"], external["group_b"]) == ("training vs external", "train",
                                                                            "external:mixed")
    assert external["kind"] == "near" and external["distance"] <= 4
    summary = json.loads((project / "results/splits/42/audit/leakage.json").read_text())
    assert summary["n_pairs"] == len(pairs) >= 2
    html = (project / "results/report/report.html").read_text()
    for path in (planted["original"], planted["copy"], planted["bmp"]):
        assert path in html
    assert f"{summary['n_pairs']} duplicate pair(s) found" in html
    assert len(list((project / "results/splits/42/audit/pairs").glob("page-*.png"))) >= 1


def test_mixed_external_set_runs_with_missing_classes_absent(smoke_run):
    project, cfg, _ = smoke_run
    listed = pd.read_csv(project / "results/data/external/mixed.csv")
    assert sorted(Path(p).suffix for p in listed["path"]) == [".bmp", ".png", ".tif"]
    for seed in cfg["seeds"]:
        m = json.loads((project / f"results/splits/42/seeds/{seed}/mixed/metrics.json").read_text())
        assert m["n"] == 3 and m["classes_present"] == ["eosinophil", "lymphocyte", "neutrophil"]
        for absent in ("basophil", "monocyte"):
            assert m["per_class"][absent]["present"] is False and m["per_class"][absent]["recall"] is None
    gaps = pd.read_csv(project / "results/summary/external.csv")
    assert sorted(set(gaps["dataset"])) == sorted(cfg["external"])
    html = (project / "results/report/report.html").read_text()
    section = html[html.index('id="run-42-1-mixed"'):]
    section = section[:section.index("</section>")]
    assert section.count('class="num absent">absent</td>') >= 2 * 3  # two absent classes, three columns each
    assert "gap to test accuracy" in section


def test_external_validity_shows_the_shifted_sets_as_shifted(smoke_run):
    project, cfg, _ = smoke_run
    table = pd.read_csv(project / "results/summary/validity.csv")
    runs = len(cfg["seeds"])
    assert len(table) == runs * (1 + len(cfg["external"]))
    by = dict(list(table.groupby("dataset")))
    # unchanged images of the training laboratory are not told apart; the stain-shifted copies are
    assert ((by["ext_plain"]["domain_auc_low"] <= 0.5) & (by["ext_plain"]["domain_auc_high"] >= 0.5)).all()
    assert (by["ext_stain"]["domain_auc_low"] > 0.5).all() and (by["ext_stain"]["domain_auc"] > 0.9).all()
    assert (by["ext_stain"]["median_percentile"] > by["ext_plain"]["median_percentile"].to_numpy()).all()
    assert by["mixed"]["domain_auc"].isna().all()  # 3 images: too few for the domain classifier
    shift = pd.read_csv(project / "results/summary/image_shift.csv").set_index(["dataset", "statistic"])
    w = shift["wasserstein_sd"]
    assert w[("ext_stain", "od_eosin")] > 1.0 > w[("ext_plain", "od_eosin")]
    assert w[("ext_blur", "sharpness")] > 1.0 > w[("ext_plain", "sharpness")]
    assert w[("ext_blur", "width")] > 1.0 and shift.loc[("ext_plain", "width"), "ks"] < 0.5
    # the majority baseline of each run equals a hand count of the set's labels
    for name in cfg["external"]:
        labels = pd.read_csv(project / f"results/data/external/{name}.csv")["label"]
        assert (by[name]["majority_accuracy"] == labels.value_counts().max() / len(labels)).all()
    # every file of the section exists, and both reports carry it
    for seed in cfg["seeds"]:
        run = project / f"results/splits/42/seeds/{seed}"
        features = np.load(run / "ext_stain/embeddings.npz")["features"]
        np.testing.assert_equal(features.shape, (5 * SHIFTED_PER_CLASS, 512))
        assert (run / "ext_stain/saliency.png").is_file() and (run / "validity/risk_coverage.png").is_file()
    audit = pd.read_csv(project / "results/summary/label_audit.csv")
    assert sorted(audit["dataset"]) == sorted(["test", *cfg["external"]])
    html = (project / "results/report/report.html").read_text()
    section = html[html.index('<section id="validity">'):html.index('<section id="card">')]
    for needle in ("External set: ext_stain", "Suspected label errors", "Grad-CAM", "Risk–coverage", "haematoxylin OD"):
        assert needle in section
    summary = html_module.unescape((project / "results/report/summary.html").read_text())
    assert "domain AUC" in summary and "majority" in summary
    assert "Set 'ext_stain' is told apart from the training images with AUC" in summary


def test_other_labs_folders_and_provenance(smoke_run):
    """Capitalised and aliased class folders reach the training classes, every mapping is stated, and the
    limitations follow the declared provenance instead of claiming one laboratory."""
    project, cfg, _ = smoke_run
    blur = pd.read_csv(project / "results/data/external/ext_blur.csv")
    split = pd.read_csv(project / "results/splits/42/split.csv")
    assert sorted(blur["label"].unique()) == sorted(split["label"].unique())
    assert blur["path"].str.contains("/Basophil/").any()
    mapped = json.loads((project / "results/data/external/ext_stain.json").read_text())["mapped"]
    assert mapped == [{"folder": "segmented", "class": "neutrophil", "how": "class_aliases"}]
    assert len(json.loads((project / "results/data/external/ext_blur.json").read_text())["mapped"]) == 5
    report = html_module.unescape((project / "results/report/report.html").read_text())
    data = report[report.index('<section id="data">'):]
    assert "Class folders mapped: “segmented” → neutrophil (class_aliases)." in data
    assert "“Basophil” → basophil (case or spaces)" in data
    assert "simulated second laboratory, haematoxylin-heavy (simulated) (other source)" in data
    summary = " ".join(html_module.unescape((project / "results/report/summary.html").read_text()).split())
    assert "External set(s) from other sources: 'ext_stain' (simulated second laboratory" in summary
    assert "External set(s) 'ext_plain' come from the training source" in summary
    assert "'ext_blur'" in summary and "declare no provenance" in summary
    assert "one laboratory" not in summary and "No external set is declared" not in summary
    assert "may be optimistic" in summary  # the planted pairs across splits and training vs external


def test_summary_pdf_has_at_most_two_pages(smoke_run):
    from pypdf import PdfReader

    project, cfg, _ = smoke_run
    reader = PdfReader(project / "results/report/summary.pdf")
    assert 1 <= len(reader.pages) <= 2
    text = " ".join(" ".join(page.extract_text().split()) for page in reader.pages)
    for needle in ("Model and training", "Data and split", "Test split", "External sets", "Leakage audit",
                   "Limitations", "mixed", "duplicate pair"):
        assert needle in text, needle
    full = " ".join(" ".join(p.extract_text().split()) for p in PdfReader(project / "results/report/report.pdf").pages)
    for needle in ("Model card", "Not for clinical use", "reliability diagram", "Most confused class pairs",
                   "Leakage audit"):
        assert needle in full, needle


def test_robustness_files_and_sections(smoke_run):
    project, cfg, _ = smoke_run
    seeds = pd.read_csv(project / "results/summary/seeds.csv")
    datasets = ["test", *cfg["external"]]
    assert len(seeds) == len(cfg["seeds"]) * len(datasets)
    rob = json.loads((project / "results/summary/robustness.json").read_text())
    agree = pd.read_csv(project / "results/summary/agreement.csv")
    for dataset in datasets:
        preds = [pd.read_csv(project / f"results/splits/42/seeds/{seed}/{dataset}/predictions.csv").set_index("path")
                 for seed in cfg["seeds"]]
        right = sum((p["label"] == p["prediction"]).astype(int) for p in preds)
        changes = (preds[0]["prediction"] != preds[1]["prediction"])
        rows = agree[agree["dataset"] == dataset].set_index("path")
        assert (rows["n_correct"] == right.loc[rows.index]).all()
        images = rob["by_split"]["42"]["datasets"][dataset]["images"]
        assert images["unstable"] == int(changes.sum()) and images["always_wrong"] == int((right == 0).sum())
        accs = [json.loads((project / f"results/splits/42/seeds/{seed}/{dataset}/metrics.json").read_text())["accuracy"]
                for seed in cfg["seeds"]]
        spread = rob["across_seeds"][dataset]["accuracy"]
        assert spread["mean"] == pytest.approx(np.mean(accs)) and spread["sd"] == pytest.approx(np.std(accs, ddof=1))
        # the ensemble averages the probabilities of the seeds
        ens = pd.read_csv(project / f"results/splits/42/ensemble/{dataset}/predictions.csv").set_index("path")
        probs = [c for c in ens.columns if c.startswith("prob_")]
        mean = sum(p[probs] for p in preds) / len(preds)
        np.testing.assert_allclose(ens[probs].to_numpy(), mean.loc[ens.index].to_numpy(), rtol=1e-6)
    html = (project / "results/report/report.html").read_text()
    assert "Seed robustness" in html and "seed ensemble" in html
    from pypdf import PdfReader

    text = " ".join(p.extract_text() for p in PdfReader(project / "results/report/summary.pdf").pages)
    assert "Dependence on the seed" in " ".join(text.split())


def test_compare_two_smoke_runs_from_the_command_line(smoke_run, tmp_path, snakemake):
    project, cfg, _ = smoke_run
    other = tmp_path / "other"
    shutil.copytree(project, other, ignore=shutil.ignore_patterns("results", ".snakemake"))
    # Run B: another learning rate, the test split only and no diagnostics (the comparison reads predictions)
    validity = {k: {**v, "enabled": False} if isinstance(v, dict) and "enabled" in v else v
                for k, v in cfg["validity"].items()}
    cfg_b = {**cfg, "phases": {**cfg["phases"], "frozen": {**cfg["phases"]["frozen"], "lr": 3e-3}}, "external": {},
             "validity": validity}
    (other / "test.yaml").write_text(yaml.safe_dump(cfg_b, sort_keys=False))
    proc = snakemake(other, "--cores", "2", "results/summary/metrics.csv", "--configfile", "test.yaml")
    assert proc.returncode == 0, proc.stdout[-3000:]
    out = tmp_path / "cmp"
    cli = [sys.executable, "-m", "leukoreport.cli"]
    done = subprocess.run([*cli, "compare", str(project), str(other), "--out", str(out), "--resamples", "999"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    result = json.loads((out / "compare.json").read_text())
    assert [(s["split_seed"], s["seed"]) for s in result["per_seed"]] == [(42, s) for s in cfg["seeds"]]
    assert (out / "compare.pdf").stat().st_size > 5000 and (out / "compare.html").is_file()
    # the same run against itself: no difference, interval containing 0
    same = subprocess.run([*cli, "compare", str(project), str(project), "--out", str(tmp_path / "same"),
                           "--resamples", "999"], capture_output=True, text=True)
    assert same.returncode == 0, same.stderr
    acc = json.loads((tmp_path / "same" / "compare.json").read_text())["metrics"]["accuracy"]
    assert acc["difference"] == 0 and acc["low"] <= 0 <= acc["high"] and "No difference detected" in acc["conclusion"]
    missing = subprocess.run([*cli, "compare", str(project), str(tmp_path / "nowhere"), "--out", str(out)],
                             capture_output=True, text=True)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "nowhere" in missing.stderr
    assert missing.stderr.startswith("error: ")
    # the Snakemake target gives the same numbers
    proc = snakemake(project, "--cores", "1", "results/compare/compare.pdf", "--configfile", "test.yaml",
                     "--config", f"compare_with={other}")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert json.loads((project / "results/compare/compare.json").read_text())["per_seed"] == result["per_seed"]


def test_predict_new_images_with_a_smoke_model(smoke_run, tmp_path):
    project, _, _ = smoke_run
    folder = tmp_path / "new"
    shutil.copytree(project / "data/external_monocyte", folder)
    (folder / "monocyte" / "corrupt.png").write_bytes(os.urandom(300))
    (folder / "notes.txt").write_text("not a cell")
    out = tmp_path / "predictions.csv"
    done = subprocess.run([sys.executable, "-m", "leukoreport.cli", "predict",
                           str(project / "results/splits/42/seeds/1/model.pkl"), str(folder), "--out", str(out)],
                          capture_output=True, text=True)
    assert done.returncode == 1, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 2 and any("corrupt.png" in e for e in errors) and any("notes.txt" in e for e in errors)
    pred = pd.read_csv(out)
    assert len(pred) == 11 and (pred["status"] == "ok").sum() == 9
    ok = pred[pred["status"] == "ok"]
    probs = ok[[c for c in pred.columns if c.startswith("prob_")]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_model_loads_with_load_learner_alone(smoke_run):
    project, _, _ = smoke_run
    model = project / "results/splits/42/seeds/1/model.pkl"
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


def test_dry_run_plans_default_three_seeds(tmp_path, copy_project, snakemake):
    project = copy_project(tmp_path / "project")
    proc = snakemake(project, "-n", "--cores", "4")
    assert proc.returncode == 0, proc.stdout[-3000:]
    jobs = dict(
        line.split()[:2] for line in proc.stdout.splitlines() if len(line.split()) == 2 and line.split()[1].isdigit()
    )
    assert jobs["train"] == "3" and jobs["evaluate"] == jobs["evaluate_test"] == "3" and jobs["weights"] == "1"
    assert jobs["split"] == "1" and jobs["ensemble"] == "2" and jobs["robustness"] == "1"


def test_dry_run_plans_the_split_seed_grid(tmp_path, copy_project, snakemake):
    project = copy_project(tmp_path / "project")
    cfg = yaml.safe_load((project / "config" / "config.yaml").read_text())
    cfg.update(split_seeds=[1, 2], seeds=[5, 6, 7])
    (project / "grid.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(project, "-n", "--cores", "4", "--configfile", "grid.yaml")
    assert proc.returncode == 0, proc.stdout[-3000:]
    jobs = dict(
        line.split()[:2] for line in proc.stdout.splitlines() if len(line.split()) == 2 and line.split()[1].isdigit()
    )
    assert jobs["split"] == "2" and jobs["leakage"] == "2" and jobs["train"] == "6" and jobs["evaluate"] == "6"
    assert jobs["evaluate_test"] == "6"
    assert "results/splits/2/seeds/7/model.pkl" in proc.stdout


# ---- bad input: the run stops with one line naming the file or key, and leaves nothing that looks done


@pytest.fixture
def bad_project(tmp_path, copy_project_light, make_image_folder):
    """A project copy with small synthetic data (3 classes x 6 images) and an external set."""
    project = copy_project_light(tmp_path / "project")
    make_image_folder(project / "images", per_class=6, size=24)
    make_image_folder(project / "external", per_class=2, size=30, classes={"beta": (40, 200, 40)})
    return project


@pytest.fixture
def run_data_rules(snakemake):
    """``run_data_rules(project, **overrides)``: the split and external-set rules of `project` on its images/ and
    external/ folders, with `overrides` of the smoke config; returns the completed snakemake process."""

    def run(project: Path, **overrides):
        cfg = yaml.safe_load((project / "config" / "smoke.yaml").read_text())
        cfg.update(data_dir="images", external={"ext": "external"}, max_per_class=None)
        cfg.update(overrides)
        (project / "bad.yaml").write_text(yaml.safe_dump(cfg))
        names = list(cfg["external"]) if isinstance(cfg.get("external"), dict) else []
        targets = ["results/splits/42/split.csv", *[f"results/data/external/{n}.csv" for n in names]]
        return snakemake(project, "--cores", "1", *targets, "--configfile", "bad.yaml")

    return run


def assert_one_line_error(proc, needle: str):
    assert proc.returncode != 0
    lines = [line for line in proc.stdout.splitlines() if needle in line]
    assert lines, proc.stdout[-3000:]


def test_good_synthetic_data_passes(bad_project, run_data_rules):
    proc = run_data_rules(bad_project)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert (bad_project / "results/data/external/ext.csv").is_file()


def test_corrupt_image(bad_project, run_data_rules):
    (bad_project / "images/alpha/alpha_00.png").write_bytes(os.urandom(500))
    proc = run_data_rules(bad_project)
    assert_one_line_error(proc, "error: images/alpha/alpha_00.png: not an image file")
    assert not (bad_project / "results/splits/42/split.csv").exists()


def test_truncated_image(bad_project, run_data_rules):
    path = bad_project / "images/beta/beta_01.jpg"
    Image.new("RGB", (64, 64), (10, 120, 200)).save(path, quality=95)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    proc = run_data_rules(bad_project)
    assert_one_line_error(proc, "error: images/beta/beta_01.jpg: corrupt or truncated image")
    assert not (bad_project / "results/splits/42/split.csv").exists()


def test_non_image_file(bad_project, run_data_rules):
    (bad_project / "images/gamma/notes.txt").write_text("not a cell")
    proc = run_data_rules(bad_project)
    assert_one_line_error(proc, "error: images/gamma/notes.txt: not an image file")


def test_empty_class_folder(bad_project, run_data_rules):
    (bad_project / "images/delta").mkdir()
    proc = run_data_rules(bad_project)
    assert_one_line_error(proc, "error: images/delta: empty class folder")


def test_unknown_external_class(bad_project, make_image_folder, run_data_rules):
    make_image_folder(bad_project / "external", per_class=1, size=30, classes={"omega": (1, 2, 3)})
    proc = run_data_rules(bad_project)
    assert_one_line_error(proc, "error: external/omega: class 'omega' is not a training class")
    assert (bad_project / "results/splits/42/split.csv").is_file()
    assert not (bad_project / "results/data/external/ext.csv").exists()


def test_missing_folder(bad_project, run_data_rules):
    proc = run_data_rules(bad_project, external={"ext": "no_such_folder"})
    assert_one_line_error(proc, "config key external.ext: folder not found: no_such_folder")


def test_invalid_config_value(bad_project, run_data_rules):
    proc = run_data_rules(bad_project, batch_size=0)
    assert_one_line_error(proc, "config key batch_size: 0 is less than the minimum of 1")


def test_missing_pretrained_weights_stop_before_training(bad_project, tmp_path, snakemake):
    cfg = yaml.safe_load((bad_project / "config" / "smoke.yaml").read_text())
    cfg.update(data_dir="images", external={}, max_per_class=None, pretrained=True, download_weights=False)
    (bad_project / "pre.yaml").write_text(yaml.safe_dump(cfg))
    torch_home = tmp_path / "empty_torch_home"
    proc = snakemake(bad_project, "--cores", "1", "results/splits/42/seeds/1/model.pkl", "--configfile", "pre.yaml",
                     env={"TORCH_HOME": str(torch_home)})
    expected = torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert_one_line_error(proc, f"error: {expected}: ImageNet weights")
    assert "pretrained: false" in proc.stdout
    assert not (bad_project / "results/logs/train_split42_seed1.log").exists()
    assert not (bad_project / "results/weights/resnet18.json").exists()


def test_leakage_fail_stops_the_run_before_training(bad_project, snakemake):
    original = bad_project / "images/alpha/alpha_00.png"
    shutil.copy2(original, bad_project / "images/gamma/copy_of_alpha_00.png")  # same pixels, other class
    cfg = yaml.safe_load((bad_project / "config" / "smoke.yaml").read_text())
    cfg.update(data_dir="images", external={}, max_per_class=None, leakage="fail")
    (bad_project / "leak.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(bad_project, "--cores", "1", "--configfile", "leak.yaml")
    assert_one_line_error(proc, "error: leakage audit: 1 duplicate pair(s) found (1 exact, 0 near")
    assert "pairs listed in results/logs/leakage_split42.log" in proc.stdout
    log = (bad_project / "results/logs/leakage_split42.log").read_text()
    assert "images/alpha/alpha_00.png" in log and "images/gamma/copy_of_alpha_00.png" in log
    assert not (bad_project / "results/splits/42/audit/leakage.json").exists()
    assert not (bad_project / "results/logs/train_split42_seed1.log").exists()


def test_snakefiles_are_formatted_with_snakefmt():
    proc = subprocess.run([sys.executable, "-m", "snakefmt", "--check", "Snakefile", "workflow/"], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_snakemake_report_after_the_smoke_run(smoke_run, snakemake):
    import zipfile

    project, _, _ = smoke_run
    proc = snakemake(project, "--report", "report.zip", "--configfile", "test.yaml")
    assert proc.returncode == 0, proc.stdout[-3000:]
    names = zipfile.ZipFile(project / "report.zip").namelist()
    assert any(n.endswith("report.html") for n in names)
    for figure in ("loss_curves.png", "confusion.png", "reliability.png", "curves.png", "summary.pdf"):
        assert any(n.endswith(figure) for n in names), figure


def test_lint_is_clean(snakemake):
    proc = snakemake(ROOT, "--lint")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "Lints for" not in proc.stdout and "warning" not in proc.stdout.lower()
    assert "Congratulations, your workflow is in a good condition!" in proc.stdout


def test_claims_files_agree_with_the_runs(smoke_run):
    """claims.csv/claims.json against numbers computed here from the runs' files; with pretrained: false the metric
    claim is not comparable (pretrained), while confusion, overfitting, balance and reproducibility get verdicts."""
    project, cfg, _ = smoke_run
    summary = project / "results" / "summary"
    paper = yaml.safe_load((project / cfg["claims"]).read_text())
    doc = json.loads((summary / "claims.json").read_text())
    table = pd.read_csv(summary / "claims.csv")
    assert list(table.columns) == ["id", "kind", "title", "text", "where", "claimed", "rerun", "low", "high",
                                   "seed_min", "seed_max", "n_seeds", "verdict", "direction", "reason", "needs",
                                   "evidence"]
    assert list(table["title"]) == [c.get("title", c["text"]) for c in paper["claims"]]
    ids = [c["id"] for c in paper["claims"]]
    assert list(table["id"]) == ids == [c["id"] for c in doc["claims"]]
    assert doc["claims_file"] == cfg["claims"] and doc["confidence"] == cfg["confidence_level"]
    assert sum(doc["counts"].values()) == len(ids)
    for verdict, n in doc["counts"].items():
        assert n == (table["verdict"] == verdict).sum()
    claims = {c["id"]: c for c in doc["claims"]}
    runs = [project / f"results/splits/42/seeds/{seed}" for seed in cfg["seeds"]]
    accuracies = [json.loads((run / "test/metrics.json").read_text())["accuracy"] for run in runs]
    accuracy = claims["test_accuracy"]
    assert accuracy["rerun_value"] == pytest.approx(np.mean(accuracies))
    assert (accuracy["seed_min"], accuracy["seed_max"]) == pytest.approx((min(accuracies), max(accuracies)))
    assert accuracy["n_seeds"] == len(cfg["seeds"])
    assert accuracy["verdict"] == "not comparable" and "pretrained" in accuracy["reason"]
    gaps = []
    for run in runs:
        history, best = pd.read_csv(run / "history.csv"), json.loads((run / "train.json").read_text())
        row = history[history["epoch"] == best["phases"][-1]["best_epoch"]].iloc[0]
        gaps.append(row["valid_loss"] - row["train_loss"])
    assert claims["no_overfitting"]["rerun_value"] == pytest.approx(np.mean(gaps))
    for cid in ("no_systematic_confusion", "no_overfitting", "balanced_classes", "seed_reproducibility"):
        assert claims[cid]["verdict"] in ("reproduced", "not reproduced", "inconclusive"), (cid, claims[cid])
    assert claims["seed_reproducibility"]["verdict"] == "reproduced"
    # the external set declares no provenance: it cannot show generalisation to new sources, whatever the recipe
    assert claims["external_perfect"]["verdict"] == "inconclusive"
    assert "provenance is not declared" in claims["external_perfect"]["reason"]
    assert {claims[c]["verdict"] for c in ("clinical_grade", "efficient_architecture")} == {"not testable"}
    deviations = pd.read_csv(summary / "deviations.csv", keep_default_na=False).set_index("item")
    assert list(deviations.columns) == ["declared", "rerun", "status", "how"]
    assert deviations.loc["pretrained", "status"] == "different" and deviations.loc["pretrained", "rerun"] == "false"
    assert deviations.loc["size", "status"] == "not declared"
    checklist = pd.read_csv(summary / "checklist.csv")
    assert list(checklist.columns) == ["item", "topic", "answered_by", "where"]
    assert list(checklist["item"]) == list(range(1, 45))
    answered = checklist.set_index("item")["answered_by"]
    assert answered[33] == answered[43] == "this run" and answered[14] == "for the authors"


def test_reproducibility_check_is_bit_identical_on_the_cpu(smoke_run):
    """The smoke config is deterministic on the CPU: the second training of split 42, seed 1 equals the first."""
    import torch

    from leukoreport.inference.model_files import load_model_file

    project, cfg, _ = smoke_run
    folder = project / "results/splits/42/reproducibility"
    record = json.loads((folder / "reproducibility.json").read_text())
    seed = cfg["seeds"][0]
    original, again = project / f"results/splits/42/seeds/{seed}", folder / f"seed{seed}"
    assert (record["split_seed"], record["seed"]) == (42, seed)
    assert record["identical_predictions"] is True and record["identical_weights"] is True
    assert record["max_probability_difference"] == 0.0 and record["n_tensors_different"] == 0
    a = pd.read_csv(original / "test/predictions.csv").sort_values("path").reset_index(drop=True)
    b = pd.read_csv(again / "test/predictions.csv").sort_values("path").reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    state_a, state_b = (load_model_file(p / "model.pkl").model.state_dict() for p in (original, again))
    assert record["n_tensors"] == len(state_a) and all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    assert json.loads((again / "train.json").read_text())["seed"] == seed
