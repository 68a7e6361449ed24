"""Tests for the report's per-dataset section (all seeds side by side) and for which per-run detail the PDF keeps
(report.build.mark_printed; the rule is stats.run_selection)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from leukoreport.report import render

SEEDS = (3, 11, 7)
DATASETS = ("test", "ext")


@pytest.fixture(scope="module")
def three(tmp_path_factory, make_fake_results, render_fake):
    results = make_fake_results(tmp_path_factory.mktemp("three"), seeds=SEEDS, datasets=DATASETS)
    return results, *render_fake(results, SEEDS, DATASETS)


def _predictions(results: Path, split: int, seed: int | None, dataset: str) -> pd.DataFrame:
    folder = results / "splits" / str(split) / ("ensemble" if seed is None else f"seeds/{seed}")
    return pd.read_csv(folder / dataset / "predictions.csv")


def test_rows_per_run_and_ensemble(three, fake_split_seed):
    results, ctx, _ = three
    for j, name in enumerate(DATASETS):
        table = ctx["by_dataset"]["datasets"][j]
        assert table["name"] == name and table["anchor"] == f"dataset-{name}"
        assert [r["label"] for r in table["rows"]] == [f"seed {s}" for s in SEEDS] + ["seed ensemble"]
        assert [r["ensemble"] for r in table["rows"]] == [False] * len(SEEDS) + [True]
        for row, seed in zip(table["rows"], [*SEEDS, None]):
            pred = _predictions(results, fake_split_seed, seed, name)
            ok, n = int((pred["label"] == pred["prediction"]).sum()), len(pred)
            assert str(row["ci"]["accuracy"]).startswith(f"{100 * ok / n:.1f}% [")


def test_confusion_summed_over_runs(three, fake_split_seed):
    results, ctx, _ = three
    for j, name in enumerate(DATASETS):
        cm = ctx["by_dataset"]["datasets"][j]["confusion"]
        both = pd.concat([_predictions(results, fake_split_seed, s, name) for s in SEEDS])
        expected = pd.crosstab(both["label"], both["prediction"])
        for row in cm["rows"]:
            for cell in row["cells"]:
                assert cell["true"] == row["label"]
                want = int(expected.at[cell["true"], cell["pred"]]) if (
                    cell["true"] in expected.index and cell["pred"] in expected.columns) else 0
                assert cell["value"] == want
        assert cm["total"] == len(both)


def test_confusion_tables_carry_data_attributes(three):
    _, ctx, html = three
    classes = ctx["classes"]
    for name in DATASETS:
        summed = re.search(rf'<table class="confusion" data-dataset="{name}">(.*?)</table>', html, re.S)
        assert summed, name
        cells = re.findall(r'data-true="([^"]+)" data-pred="([^"]+)">(\d+)<', summed.group(1))
        assert sorted((t, p) for t, p, _ in cells) == sorted((t, p) for t in classes for p in classes)
        for seed in SEEDS:
            per_run = re.search(rf'<table class="confusion" data-dataset="{name}" data-run="seed {seed}">(.*?)</table>',
                                html, re.S)
            assert per_run and len(re.findall(r"data-true=", per_run.group(1))) == len(classes) ** 2


def test_most_wrong_gallery_in_each_dataset(three):
    _, ctx, html = three
    for table in ctx["by_dataset"]["datasets"]:
        assert [g["figure"][:22] for g in table["galleries"]] == ["data:image/png;base64,"]
    assert html.count("the images most runs get\n      wrong, each with “wrong in k of n seeds”") == len(DATASETS)


def test_printed_runs_by_rule(three, fake_split_seed):
    results, ctx, html = three
    accuracy = {s: float((p["label"] == p["prediction"]).mean())
                for s in SEEDS for p in [_predictions(results, fake_split_seed, s, "test")]}
    ranked = sorted(SEEDS, key=lambda s: (accuracy[s], SEEDS.index(s)))
    chosen = {ranked[0], ranked[len(ranked) // 2]}
    assert ctx["printed"]["labels"] == [f"seed {s}" for s in SEEDS if s in chosen]
    assert ctx["printed"]["median"] == f"seed {ranked[len(ranked) // 2]}"
    for s in ctx["seeds"]:
        assert s["printed"] == (s["seed"] in chosen)
        assert [d["printed"] for d in s["datasets"]] == [s["printed"] and d["name"] == "test" for d in s["datasets"]]
        opening = re.search(rf'<section class="seed run-detail[^"]*" id="{s["anchor"]}"[^>]*>', html).group(0)
        assert ("html-only" in opening) == (not s["printed"])
        assert f'data-label="{s["label"]}"' in opening
    assert ctx["printed"]["rule"] in html
    for d in ctx["validity"]["datasets"]:
        assert [g["printed"] for g in d["saliency"]] == [g["label"] == ctx["printed"]["median"] for g in d["saliency"]]


def test_pdf_leaves_out_html_only_detail(three, tmp_path):
    from pypdf import PdfReader

    _, ctx, html = three
    path = tmp_path / "report.html"
    render.write_html(html, path)
    render.write_pdf(path, tmp_path / "report.pdf")
    text = " ".join(p.extract_text() or "" for p in PdfReader(str(tmp_path / "report.pdf")).pages)
    text = " ".join(text.split())
    for s in ctx["seeds"]:
        heading = f"{s['number']}. {s['title']}"
        assert (heading in text) == s["printed"], heading
        if s["printed"]:
            assert f"{s['title']} — test split" in text
            assert f"{s['title']} — external set “ext”" not in text
