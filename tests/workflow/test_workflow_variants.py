"""The real workflow on config/smoke_variants.yaml: variants x seeds, the verdicts, and both reports."""

from __future__ import annotations

import json
import re
import time

import numpy as np
import pandas as pd
import pytest
import yaml
from pypdf import PdfReader
from statsmodels.stats.multitest import multipletests

from leukoreport.compare import compare_runs
from leukoreport.report.number_format import estimate

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def variants_run(tmp_path_factory, copy_project, snakemake):
    project = copy_project(tmp_path_factory.mktemp("variants") / "project")
    cfg = yaml.safe_load((project / "config" / "smoke_variants.yaml").read_text())
    start = time.perf_counter()
    proc = snakemake(project, "--cores", "2", "--configfile", "config/smoke_variants.yaml")
    print(f"smoke variants workflow: {time.perf_counter() - start:.1f} s")
    assert proc.returncode == 0, proc.stdout[-5000:]
    return project, cfg, json.loads((project / "results/summary/variants.json").read_text())


def job_counts(output: str) -> dict[str, int]:
    """Snakemake's 'Job stats' table of a dry run as {rule: count}."""
    table = output.split("Job stats:", 1)[1]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, flags=re.M)}


def test_dry_run_plans_every_variant_and_seed(tmp_path, copy_project, snakemake):
    project = copy_project(tmp_path / "project")
    cfg = yaml.safe_load((project / "config" / "variants.yaml").read_text())
    proc = snakemake(project, "-n", "--configfile", "config/variants.yaml", "--config", "pretrained=False")
    assert proc.returncode == 0, proc.stdout[-3000:]
    counts = job_counts(proc.stdout)
    n_variants, n_seeds = len(cfg["variants"]), len(cfg["seeds"])
    assert n_variants == 4 and n_seeds == 3
    # the `tta` variant changes nothing in training: it reuses the paper's models (rule reuse_training)
    assert [n for n, o in cfg["variants"].items() if set(o) == {"tta"}] == ["tta"]
    assert counts["train"] == (n_variants - 1) * n_seeds and counts["reuse_training"] == n_seeds
    assert counts["evaluate"] == n_variants * n_seeds * len(cfg["external"])
    assert counts["evaluate_test"] == n_variants * n_seeds
    assert counts["split"] == counts["cache"] == counts["leakage"] == 1  # shared by the variants
    assert counts["variants"] == counts["report_html"] == 1
    for name in cfg["variants"]:
        assert f"results/variants/{name}/splits/42/seeds/42/model.pkl" in proc.stdout


def test_every_variant_trains_and_evaluates_with_its_own_recipe(variants_run):
    project, cfg, _ = variants_run
    for name, overrides in cfg["variants"].items():
        for seed in cfg["seeds"]:
            run = project / "results" / "variants" / name / "splits" / "42" / "seeds" / str(seed)
            assert (run / "model.pkl").is_file()
            train = json.loads((run / "train.json").read_text())
            stain = overrides.get("stain_augmentation", cfg["stain_augmentation"])
            assert train["stain_augmentation"]["method"] == stain["method"]
            metrics = json.loads((run / "test" / "metrics.json").read_text())
            assert metrics["tta"] is overrides.get("tta", cfg["tta"])
            assert metrics["evaluation"]["adabn"] is overrides.get("evaluation", {}).get("adabn", False)
    # shared steps ran once, in results/
    assert (project / "results/splits/42/split.csv").is_file()
    assert not (project / "results/variants/paper/splits/42/split.csv").exists()


def test_a_variant_set_only_at_evaluation_reuses_the_models_and_adapts_batchnorm(variants_run):
    """`adabn` (evaluation: {adabn: true}) trains nothing: its model files are the paper's byte for byte; its
    predictions differ from the paper's because BatchNorm statistics are re-estimated on each evaluated set."""
    project, cfg, _ = variants_run
    assert cfg["variants"]["adabn"] == {"evaluation": {"adabn": True}}
    root = project / "results" / "variants"
    for seed in cfg["seeds"]:
        paper, adabn = (root / v / "splits" / "42" / "seeds" / str(seed) for v in ("paper", "adabn"))
        for name in ("model.pkl", "model.safetensors", "model.json", "history.csv"):
            assert (adabn / name).read_bytes() == (paper / name).read_bytes(), name
        assert json.loads((adabn / "train.json").read_text())["trained_as_variant"] == "paper"
        assert "trained_as_variant" not in json.loads((paper / "train.json").read_text())
        assert not (root / "adabn" / "logs" / f"train_split42_seed{seed}.log").exists()
        for dataset in ["test", *cfg["external"]]:
            a = pd.read_csv(paper / dataset / "predictions.csv")
            b = pd.read_csv(adabn / dataset / "predictions.csv")
            assert list(a["path"]) == list(b["path"])
            probs = [c for c in a.columns if c.startswith("prob_")]
            assert len(probs) == 5
            assert not np.allclose(a[probs].to_numpy(float), b[probs].to_numpy(float))


def test_variant_numbers_equal_compare_and_an_independent_holm(variants_run):
    project, cfg, result = variants_run
    datasets = ["test", *cfg["external"]]
    others = [v for v in cfg["variants"] if v != result["reference"]]
    assert result["reference"] == "paper" and result["datasets"] == datasets
    assert result["n_comparisons"] == len(others) * len(datasets) * 4 == len(result["comparisons"])
    adjusted = multipletests([c["p"] for c in result["comparisons"]], method="holm")[1]
    np.testing.assert_allclose([c["p_holm"] for c in result["comparisons"]], adjusted, rtol=1e-12)
    for c in result["comparisons"]:
        better = c["difference"] < 0 if c["metric"] == "ece" else c["difference"] > 0
        expected = ("better" if better else "worse") if c["p_holm"] < result["alpha"] else "no difference detected"
        assert c["verdict"] == expected
    # `leukoreport compare` of one variant against the reference gives the same numbers
    results = project / "results" / "variants"
    for variant in others:
        compared = compare_runs(results / variant, results / "paper", n_resamples=cfg["bootstrap_resamples"],
                                seed=cfg["bootstrap_seed"], confidence=cfg["confidence_level"])
        for c in (c for c in result["comparisons"] if c["variant"] == variant):
            got = compared["datasets"][c["dataset"]]["metrics"][c["metric"]]
            assert got["difference"] == pytest.approx(c["difference"], abs=1e-12)
            assert (got["low"], got["high"]) == pytest.approx((c["low"], c["high"]), abs=1e-12)


def test_summary_rows_equal_a_recomputation_from_the_predictions(variants_run):
    project, cfg, result = variants_run
    table = pd.read_csv(project / "results/summary/variants.csv")
    assert len(table) == len(cfg["variants"]) * (1 + len(cfg["external"])) * 4
    for variant in cfg["variants"]:
        for dataset in ["test", *cfg["external"]]:
            acc = []
            for seed in cfg["seeds"]:
                pred = pd.read_csv(project / "results/variants" / variant / "splits/42/seeds" / str(seed) / dataset
                                   / "predictions.csv")
                acc.append(float((pred["label"] == pred["prediction"]).mean()))
            row = table[(table["variant"] == variant) & (table["dataset"] == dataset)
                        & (table["metric"] == "accuracy")].iloc[0]
            assert row["mean"] == pytest.approx(np.mean(acc), abs=1e-12)
            assert row["sd"] == pytest.approx(np.std(acc, ddof=1), abs=1e-12)


def test_reports_have_the_variants_section_and_table(variants_run):
    project, cfg, result = variants_run
    html = (project / "results/report/report.html").read_text()
    # Claims (section 1) and the run summary (2) come first when the config names a claims file
    number = 3 if cfg["claims"] else 2
    assert 'id="variants"' in html and f"{number}. Variants" in html
    assert f"{result['n_comparisons']} comparisons" in html
    accuracy = {(r["variant"], r["dataset"]): r for r in result["summary"] if r["metric"] == "accuracy"}
    for (_variant, _dataset), r in accuracy.items():
        assert str(estimate(r["mean"], r["mean_low"], r["mean_high"])) in html
    for variant in cfg["variants"]:
        for seed in cfg["seeds"]:
            assert f"Variant {variant} · seed {seed}" in html
    figures = project / "results/summary/variants"
    assert {p.name for p in figures.glob("*.png")} == {f"intervals_{m}.png" for m in result["metrics"]} | {
        "improvement.png"}
    report = PdfReader(project / "results/report/report.pdf")
    assert "Variants" in "".join(page.extract_text() for page in report.pages[:4])
    summary = PdfReader(project / "results/report/summary.pdf")
    assert len(summary.pages) <= 2
    text = summary.pages[0].extract_text()
    assert "Recipe variants against" in text
    for variant in cfg["variants"]:
        assert variant in text
