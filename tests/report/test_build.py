"""Tests for leukoreport.report (build, render, run_facts): context numbers, HTML content and escaping, PDF,
atomic writes."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pandas as pd
import pytest

from leukoreport.base.errors import LeukoError
from leukoreport.report import build as report
from leukoreport.report import render, run_facts

SEEDS = (3, 11)
DATASETS = ("test", "ext")
RUN_INFO = run_facts.RunInfo(date="2025-01-02 03:04 UTC", git_commit="abc1234 (modified)",
                          packages={"torch": "9.9.9", "pandas": "2.3.3"}, device="CPU: x86_64, 2 cores",
                          python="3.11.7")  # not the common RUN_INFO: its commit and torch are asserted below


@pytest.fixture(scope="module")
def fake(tmp_path_factory, make_fake_results, render_fake):
    """One fake results folder, its context and rendered HTML, shared by the read-only tests."""
    results = make_fake_results(tmp_path_factory.mktemp("proj"), seeds=SEEDS, datasets=DATASETS)
    return results, *render_fake(results, SEEDS, DATASETS, run_info=RUN_INFO)


def _expected(results: Path, split_seed: int, seed: int, dataset: str) -> dict:
    """Independent recomputation from predictions.csv."""
    pred = pd.read_csv(results / "splits" / str(split_seed) / "seeds" / str(seed) / dataset / "predictions.csv")
    n = len(pred)
    ok = int((pred["label"] == pred["prediction"]).sum())
    recalls = [float((g["prediction"] == label).mean()) for label, g in pred.groupby("label")]
    wrong = pred[pred["label"] != pred["prediction"]]
    z = 1.959963984540054
    centre, half = (ok + z * z / 2) / (n + z * z), z * math.sqrt(ok * (n - ok) / n + z * z / 4) / (n + z * z)
    return {"accuracy": f"{100 * ok / n:.2f}% ({ok}/{n})",
            "accuracy_ci": f"{100 * ok / n:.1f}% [{100 * (centre - half):.1f}–{100 * min(1.0, centre + half):.1f}]",
            "balanced_accuracy": f"{100 * sum(recalls) / len(recalls):.2f}%",
            "errors": sorted(wrong["path"]), "present": set(pred["label"])}


def test_context_numbers_match_predictions(fake, fake_split_seed):
    results, ctx, _ = fake
    assert [s["seed"] for s in ctx["seeds"]] == list(SEEDS)
    for i, seed in enumerate(SEEDS):
        for j, dataset in enumerate(DATASETS):
            exp = _expected(results, fake_split_seed, seed, dataset)
            d = ctx["seeds"][i]["datasets"][j]
            row = ctx["by_dataset"]["datasets"][j]["rows"][i]
            assert d["name"] == dataset and row["label"] == f"seed {seed}"
            assert d["accuracy"] == exp["accuracy"]
            assert str(row["ci"]["accuracy"]) == str(d["ci"]["accuracy"]) == exp["accuracy_ci"]
            assert d["balanced_accuracy"] == exp["balanced_accuracy"]
            assert sorted(e["file"] for e in d["errors"]) == exp["errors"]
            assert d["n_errors"] == len(exp["errors"]) >= 1
            for r in d["per_class"]:
                if r["label"] in exp["present"]:
                    assert r["present"] and r["recall"].endswith("%")
                else:  # absent classes are "absent", never 0
                    assert not r["present"] and (r["precision"], r["recall"], r["f1"]) == ("absent",) * 3
            cm = d["confusion"]
            assert cm["total"] == sum(r["total"] for r in cm["rows"]) == d["n"]
    # mean ± SD row over the two seeds
    accs = [float(_expected(results, fake_split_seed, s, "test")["accuracy"].split("%")[0]) for s in SEEDS]
    mean = ctx["by_dataset"]["datasets"][0]["mean"]["accuracy"]
    assert mean.mean == f"{sum(accs) / 2:.2f}%"
    # split counts, external counts, benchmarks, weights, recipe from the files
    split = pd.read_csv(results / "splits" / str(fake_split_seed) / "split.csv")
    total = ctx["data"]["split_rows"][-1]
    assert total["label"] == "total" and total["total"] == len(split)
    assert total["test"] == int((split["split"] == "test").sum())
    ext = ctx["data"]["external"][0]
    assert ext["name"] == "ext" and ext["total"] == len(pd.read_csv(results / "data" / "external" / "ext.csv"))
    assert [b["job"] for b in ctx["benchmarks"]["rows"]] == ["split", f"train_seed{SEEDS[0]}"]
    assert ctx["benchmarks"]["total_seconds"] == "814.9 s"
    assert ctx["weights"]["init"] == "ImageNet (torchvision IMAGENET1K_V1)"
    assert [p["lr"] for p in ctx["recipe"]["phases"]] == ["0.001", "0.0001"]
    assert ctx["data"]["citation"] == ("PBC dataset, CellaVision DM96; "
                                       "PBC dataset, Acevedo et al. (2020), Data in Brief 30:105474")
    assert ext["origin"] == "lab of ext" and ext["relation"] == "other source"


def test_single_seed_has_no_mean_row(tmp_path, make_fake_results, render_fake):
    results = make_fake_results(tmp_path, seeds=(5,), datasets=("test",))
    ctx, html = render_fake(results, (5,), ("test",), run_info=RUN_INFO,
                            config={"data_provenance": {"citation": "My citation"}})
    assert ctx["by_dataset"]["datasets"][0]["mean"] is None and ctx["by_dataset"]["seconds_mean"] is None
    assert ctx["data"]["citation"] == "My citation"
    assert "mean ± SD" not in html and "My citation" in html


def test_html_shows_every_seed_dataset_and_figure(fake, fake_split_seed):
    _, ctx, html = fake
    assert report.TITLE in html
    for seed in SEEDS:
        assert f"Seed {seed}" in html
    for dataset in DATASETS:
        assert dataset in html
    assert "abc1234 (modified)" in html and "torch" in html and "9.9.9" in html
    assert "train_seed3" in html
    # loss curves per seed + 5 figures per seed and dataset + one page of duplicate pairs
    # + per dataset a strip plot and two agreement galleries; external validity: per seed and dataset a Grad-CAM
    # page, per seed risk-coverage and OOD bands, per external set the image statistics, per set with suspected
    # label errors their gallery; all embedded
    validity = fake[0] / "splits" / str(fake_split_seed) / "validity"
    suspects = sum(json.loads((validity / d / "label_audit.json").read_text())["n_suspected"] > 0 for d in DATASETS)
    validity = len(SEEDS) * len(DATASETS) + 2 * len(SEEDS) + (len(DATASETS) - 1) + suspects
    # per dataset: the per-run plot, the always-wrong and unstable galleries and the most-wrong gallery (section
    # "All seeds side by side")
    assert html.count('src="data:image/png;base64,') == (len(SEEDS) * (1 + 5 * len(DATASETS)) + 1 + 4 * len(DATASETS)
                                                         + validity)
    assert 'src="seeds/' not in html and "file://" not in html
    assert "absent" in html


def test_autoescape_malicious_names(tmp_path, make_fake_results, render_fake):
    evil = "<script>alert('x')"
    results = make_fake_results(tmp_path, seeds=(1,), datasets=("test",), classes=("a", evil, "c"),
                                file_prefix="<script>f")
    _, html = render_fake(results, (1,), ("test",), run_info=RUN_INFO, config={"note": "<script>cfg</script>"})
    # the only script elements are the explorer's data block and code (tests/report/test_explore.py)
    assert html.lower().count("<script") == 2 and "<script>alert" not in html and "<script>f" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)" in html  # class name
    assert "&lt;script&gt;f_" in html  # file name, in the misclassified table or split paths
    assert "&lt;script&gt;cfg&lt;/script&gt;" in html  # config value


def test_missing_file_raises_naming_it(tmp_path, make_fake_results, fake_split_seed):
    results = make_fake_results(tmp_path, seeds=(1, 2), datasets=("test", "ext"))
    target = results / "splits" / str(fake_split_seed) / "seeds" / "2" / "ext" / "metrics.json"
    target.unlink()
    with pytest.raises(LeukoError, match=r"seeds/2/ext/metrics\.json"):
        report.build_context(results, {}, [fake_split_seed], [1, 2], ["test", "ext"], RUN_INFO)
    fig = results / "splits" / str(fake_split_seed) / "seeds" / "1" / "test" / "errors" / "page-01.png"
    fig.unlink()
    with pytest.raises(LeukoError, match=r"seeds/1/test/errors/page-01\.png"):
        report.build_context(results, {}, [fake_split_seed], [1], ["test"], RUN_INFO)


def test_missing_data_files_raise(tmp_path, make_fake_results, fake_split_seed):
    results = make_fake_results(tmp_path, seeds=(1,), datasets=("test", "ext"))
    (results / "data" / "external" / "ext.csv").unlink()
    with pytest.raises(LeukoError, match=r"data/external/ext\.csv"):
        report.build_context(results, {}, [fake_split_seed], [1], ["test", "ext"], RUN_INFO)
    (results / "weights" / "resnet18.json").unlink()
    with pytest.raises(LeukoError, match=r"weights/resnet18\.json"):
        report.build_context(results, {}, [fake_split_seed], [1], ["test"], RUN_INFO)


def test_pdf_written_and_readable(fake, tmp_path):
    from pypdf import PdfReader

    _, _, html = fake
    html_path, pdf_path = tmp_path / "report" / "report.html", tmp_path / "report" / "report.pdf"
    render.write_html(html, html_path)
    assert html_path.read_text(encoding="utf-8") == html
    render.write_pdf(html_path, pdf_path)
    reader = PdfReader(str(pdf_path))
    assert len(reader.pages) >= 2
    text = " ".join(page.extract_text() or "" for page in reader.pages)
    assert "rerun report" in text and "Page 1 of" in text
    assert sorted(p.name for p in pdf_path.parent.iterdir()) == ["report.html", "report.pdf"]


def test_write_pdf_without_html_leaves_nothing(tmp_path):
    pdf = tmp_path / "out" / "report.pdf"
    with pytest.raises(LeukoError, match="report.html"):
        render.write_pdf(tmp_path / "report.html", pdf)
    assert not pdf.exists()
    assert not pdf.parent.exists() or list(pdf.parent.iterdir()) == []


def test_interrupted_writes_leave_no_partial_files(tmp_path, monkeypatch):
    out = tmp_path / "report.html"
    render.write_html("<p>old</p>", out)

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        render.write_html("<p>new</p>", out)
    with pytest.raises(OSError):
        render.write_pdf(out, tmp_path / "report.pdf")
    assert out.read_text() == "<p>old</p>"  # the previous complete file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


def test_collect_run_info(tmp_path):
    info = run_facts.collect_run_info(tmp_path)  # not a git repository
    assert info.git_commit == "unknown"
    assert set(run_facts.PACKAGES) <= set(info.packages)
    assert info.packages["pandas"] == pd.__version__
    assert info.device.startswith(("CPU: ", "CUDA: "))
    assert info.python and info.date


def test_leakage_and_external_gap_sections(fake, fake_split_seed):
    results, ctx, html = fake
    pairs = pd.read_csv(results / "splits" / str(fake_split_seed) / "audit" / "leakage.csv")
    assert ctx["leakage"][0]["n_pairs"] == len(pairs) == 2
    assert [p["file_a"] for p in ctx["leakage"][0]["pairs"]] == list(pairs["path_a"])
    for path in list(pairs["path_a"]) + list(pairs["path_b"]):
        assert path in html
    assert "2 duplicate pair(s) found: 1 exact, 1 near" in html
    gaps = pd.read_csv(results / "summary" / "external.csv")
    ext = ctx["external"][0]
    assert ext["name"] == "ext" and [r["label"] for r in ext["rows"]] == [f"seed {s}" for s in SEEDS]
    for row, (_, g) in zip(ext["rows"], gaps.iterrows()):
        sign = lambda x: f"{100 * x:+.1f}".replace("-", "\u2212")  # noqa: E731
        assert str(row["gap"]) == f"{sign(g['gap'])} pp [{sign(g['gap_low'])} to {sign(g['gap_high'])}]"
    d = ctx["seeds"][0]["datasets"][1]
    assert d["name"] == "ext" and str(d["gap"]) == str(ext["rows"][0]["gap"])
    assert "Not for clinical use" in html and "Model card" in html


def test_summary_context_and_html(fake, tmp_path, render_fake):
    results, _, _ = fake
    ctx, html = render_fake(results, SEEDS, DATASETS, "summary", run_info=RUN_INFO)
    table = pd.read_csv(results / "summary" / "metrics.csv")
    test = table[table["dataset"] == "test"]
    assert [r["label"] for r in ctx["test"]["rows"]] == [f"seed {s}" for s in test["seed"]]
    assert [r["n_correct"] for r in ctx["test"]["rows"]] == list(test["n_correct"])
    # with claims the summary keeps the test confusion matrix and points to report.pdf for the training curves
    assert html.count('src="data:image/png;base64,') == (1 if ctx["claims"] else 2)
    assert ("curves of every seed are in report.pdf" in html) == bool(ctx["claims"])
    assert "Limitations" in html and "2 duplicate pair(s)" in html
    out = tmp_path / "summary.html"
    render.write_html(html, out)
    render.write_pdf(out, tmp_path / "summary.pdf")
    from pypdf import PdfReader

    assert len(PdfReader(tmp_path / "summary.pdf").pages) <= 2


def test_robustness_section_matches_the_files(fake, fake_split_seed):
    results, ctx, html = fake
    import json
    import statistics

    rob = ctx["robustness"]
    seeds = pd.read_csv(results / "summary" / "seeds.csv")
    for d in rob["datasets"]:
        accs = list(seeds.loc[seeds["dataset"] == d["name"], "accuracy"])
        row = d["rows"][0]
        assert row["metric"] == "accuracy" and row["n_runs"] == len(accs) == len(SEEDS)
        assert row["mean"] == f"{100 * statistics.mean(accs):.2f}%"
        assert row["sd"] == f"{100 * statistics.stdev(accs):.2f}"
        ens = json.loads((results / "splits" / str(fake_split_seed) / "ensemble" / d["name"] / "metrics.json")
                         .read_text())
        assert d["splits"][0]["ensemble"]["n_correct"] == ens["n_correct"]
        agree = pd.read_csv(results / "summary" / "agreement.csv")
        agree = agree[agree["dataset"] == d["name"]]
        assert d["splits"][0]["images"]["unstable"] == int(agree["unstable"].sum())
        assert d["splits"][0]["images"]["always_wrong"] == int(agree["always_wrong"].sum())
    assert "Seed robustness" in html and "seed ensemble" in html


def test_write_pdf_keeps_pil_strict(fake, tmp_path):
    from PIL import ImageFile

    _, _, html = fake
    render.write_html(html, tmp_path / "r.html")
    render.write_pdf(tmp_path / "r.html", tmp_path / "r.pdf")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_validity_section_numbers_come_from_the_files(fake, fake_split_seed):
    results, ctx, html = fake
    section = ctx["validity"]
    assert [d["name"] for d in section["datasets"]] == list(DATASETS)
    for d in section["datasets"]:
        for seed, row in zip(SEEDS, d["rows"]):
            folder = results / "splits" / str(fake_split_seed) / "seeds" / str(seed) / d["name"]
            pred = pd.read_csv(folder / "predictions.csv")
            share = pred["label"].value_counts().max() / len(pred)  # majority baseline by hand
            assert row["majority"] == f"{100 * share:.1f}%"
            dom = json.loads((folder / "shift.json").read_text())["domain_classifier"]
            assert row["auc"] == "—" if dom["auc"] is None else row["auc"].startswith(f"{dom['auc']:.3f} [")
    ext = section["datasets"][1]
    assert ext["image_shift"][0]["n_statistics"] == 15 and ext["label_audit"][0]["n"] == 4
    assert 'id="validity"' in html and "External validity" in html and "suspected" in html
    # the external set's fake embeddings are moved by 3 SD: the limitation sentence says it is told apart
    card = " ".join(ctx["card"]["limitations"])
    assert "set 'ext' is told apart from the training images with AUC" in card.replace("Set", "set")


def test_summary_external_table_has_majority_and_domain_auc(fake, tmp_path, fake_config, fake_split_seed):
    results, _, _ = fake
    ctx = report.summary_context(results, fake_config(SEEDS, DATASETS), [fake_split_seed], list(SEEDS), list(DATASETS),
                                 RUN_INFO)
    table = pd.read_csv(results / "summary" / "validity.csv")
    for r in ctx["external"][0]["rows"]:
        assert r["validity"]["majority"] == "100.0%"  # every fake external image is of the first class
    sentences = [s for s in ctx["limitations"] if "Set 'ext'" in s]  # one bullet per set, maybe after its width
    assert len(sentences) == 1 and "majority baseline 100.0%" in sentences[0]
    assert ctx["external"][0]["classes_text"] == ", ".join(ctx["external"][0]["classes_present"])  # one of 5
    assert table.loc[table["dataset"] == "ext", "majority_accuracy"].eq(1.0).all()


def test_validity_sentences_follow_the_numbers():
    from leukoreport.report.sections.validity import validity_by_set

    def row(name, seed, acc, auc, low, high, maj=0.59, gain_low=None, gain_high=None):
        return {"split_seed": 42, "seed": seed, "dataset": name, "accuracy": acc, "accuracy_low": acc - 0.05,
                "accuracy_high": acc + 0.05, "majority_class": "neutrophil", "majority_accuracy": maj,
                "gain": acc - maj, "gain_low": acc - maj - 0.05 if gain_low is None else gain_low,
                "gain_high": acc - maj + 0.05 if gain_high is None else gain_high,
                "domain_auc": auc, "domain_auc_low": low, "domain_auc_high": high}

    table = pd.DataFrame([row("test", 1, 0.99, 0.5, 0.4, 0.6), row("lab2", 1, 0.31, 0.99, 0.98, 1.0),
                          row("same", 1, 0.97, 0.51, 0.45, 0.57, maj=0.2), row("tiny", 1, 0.5, None, None, None,
                                                                                 gain_low=-0.3, gain_high=0.2)])
    got = list(validity_by_set(table).values())
    assert got[0] == ("Set 'lab2' is told apart from the training images with AUC 0.990 [0.980–1.000]; its accuracy "
                      "31.0% [26.0–36.0] is below the majority baseline 59.0% (always 'neutrophil').")
    assert got[1].startswith("Set 'same' is not clearly told apart")
    assert "is above the majority baseline 20.0%" in got[1]
    assert got[2].startswith("Set 'tiny' (too few images for the domain classifier): ") or \
        got[2].startswith("Set 'tiny' (too few images for the domain classifier); ")
    assert "not shown to differ" in got[2] and len(got) == 3


def test_benchmarks_per_rule_sum_the_jobs(tmp_path):
    from leukoreport.report.sections.run_summary import benchmark_rule, benchmarks_section

    assert [benchmark_rule(s) for s in ["evaluate_split42_seed1_test", "train_split7_seed3", "split42",
                                        "report_html", "external_lab_2"]] == \
        ["evaluate", "train", "split42", "report_html", "external_lab_2"]
    bench = tmp_path / "benchmarks"
    bench.mkdir()
    walls = {"evaluate_split42_seed1_test": 2.5, "evaluate_split42_seed2_test": 4.0, "train_split42_seed1": 10.0}
    for stem, wall in walls.items():
        (bench / f"{stem}.tsv").write_text(f"s\th:m:s\tmax_rss\n{wall}\t0:00:0{int(wall)}\t{wall * 100}\n")
    rules = {r["rule"]: r for r in benchmarks_section(tmp_path)["by_rule"]}
    assert set(rules) == {"evaluate", "train"}
    assert rules["evaluate"]["jobs"] == 2 and rules["evaluate"]["seconds"] == "6.5 s"
    assert rules["evaluate"]["max_rss"] == "400 MB" and rules["train"]["jobs"] == 1
