"""Tests for leukoreport.report.sections.explore and figures.thumbnails: the explorer's data of the HTML report
(every run's predictions per dataset, thumbnails), its escaping, the inlined files, and a PDF that it leaves alone."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
from collections import Counter

import pandas as pd
import pytest
from PIL import Image
from pypdf import PdfReader

from leukoreport.base.errors import LeukoError
from leukoreport.report import build as report
from leukoreport.report import render
from leukoreport.report.figures.thumbnails import THUMBNAIL_SIDE, thumbnail_uri
from leukoreport.report.sections.explore import add_variant_runs, explore_context, script_json
from leukoreport.stats.run_tables import run_keys

SEEDS = (1, 2)
DATASETS = ("test", "ext")
DATA_BLOCK = re.compile(r'<script type="application/json" id="explore-data">(.*?)</script>', re.S)


@pytest.fixture(scope="module")
def fake(tmp_path_factory, make_fake_results, fake_split_seed):
    root = tmp_path_factory.mktemp("explore")
    results = make_fake_results(root, seeds=SEEDS, datasets=DATASETS)
    keys = run_keys([fake_split_seed], list(SEEDS))
    return root, results, keys, explore_context(results, keys, list(DATASETS))["data"].payload


def _decode(uri: str) -> Image.Image:
    head, data = uri.split(",", 1)
    assert head == "data:image/jpeg;base64"
    return Image.open(io.BytesIO(base64.b64decode(data)))


def test_payload_counts_match_metrics_confusion(fake, fake_split_seed):
    """Per run and dataset, (true, predicted) counts of the payload = metrics.json's confusion matrix; one row per
    line of predictions.csv with its formatted probabilities."""
    root, results, keys, payload = fake
    assert list(payload["datasets"]) == list(DATASETS)
    for name in DATASETS:
        entry = payload["datasets"][name]
        assert [r["label"] for r in entry["runs"]] == [f"seed {s}" for s in SEEDS]
        assert all(r["main"] and r["variant"] is None for r in entry["runs"])
        for seed, run in zip(SEEDS, entry["runs"]):
            folder = results / "splits" / str(fake_split_seed) / "seeds" / str(seed) / name
            cm = json.loads((folder / "metrics.json").read_text())["confusion_matrix"]
            counts = Counter((entry["images"][i][1], p) for i, p, _, _ in run["rows"])
            labels = cm["labels"]
            assert labels == entry["classes"]
            for t, row in enumerate(cm["matrix"]):
                for p, value in enumerate(row):
                    assert counts[(t, p)] == value, (name, seed, labels[t], labels[p])
            pred = pd.read_csv(folder / "predictions.csv")
            assert len(run["rows"]) == len(pred)
            for (i, p, p_pred, p_true), (_, r) in zip(run["rows"], pred.iterrows()):
                assert entry["images"][i][0] == r["path"] and labels[p] == r["prediction"]
                assert p_pred == f"{100 * r[f'prob_{r.prediction}']:.1f}%"
                assert p_true == f"{100 * r[f'prob_{r.label}']:.1f}%"


def test_one_small_jpeg_thumbnail_per_image(fake):
    root, results, keys, payload = fake
    for name in DATASETS:
        images = payload["datasets"][name]["images"]
        paths = [img[0] for img in images]
        assert len(paths) == len(set(paths))  # each image once, whatever the number of runs
        for path, _, uri in images:
            thumb = _decode(uri)
            assert thumb.format == "JPEG" and max(thumb.size) <= THUMBNAIL_SIDE
            with Image.open(root / path) as original:  # same colour as the (uniform) fake image
                expected = original.convert("RGB").getpixel((0, 0))
            got = thumb.convert("RGB").getpixel((thumb.width // 2, thumb.height // 2))
            assert all(abs(a - b) <= 12 for a, b in zip(got, expected))


def test_thumbnail_of_a_large_image_keeps_its_aspect(tmp_path):
    Image.new("RGB", (400, 200), (10, 200, 30)).save(tmp_path / "wide.png")
    Image.new("RGBA", (50, 80), (200, 10, 30, 128)).save(tmp_path / "alpha.png")
    assert _decode(thumbnail_uri(tmp_path / "wide.png")).size == (THUMBNAIL_SIDE, THUMBNAIL_SIDE // 2)
    assert _decode(thumbnail_uri(tmp_path / "alpha.png")).size == (50, 80)  # never enlarged


def test_missing_or_broken_image_is_one_line_naming_it(tmp_path, make_fake_results, fake_split_seed):
    results = make_fake_results(tmp_path, seeds=(1,), datasets=("test",))
    folder = results / "splits" / str(fake_split_seed) / "seeds" / "1" / "test"
    path = pd.read_csv(folder / "predictions.csv")["path"][0]
    (tmp_path / path).unlink()
    keys = run_keys([fake_split_seed], [1])
    with pytest.raises(LeukoError, match=re.escape(path) + ": image not found"):
        explore_context(results, keys, ["test"])
    (tmp_path / path).write_bytes(b"not an image")
    with pytest.raises(LeukoError, match=re.escape(path) + ": cannot make a thumbnail"):
        explore_context(results, keys, ["test"])


def test_variant_runs_are_added_with_their_variant(tmp_path, make_fake_results, fake_split_seed):
    """The reference's runs (from build_context) are marked as the reference's and summed by default; the other
    variant's runs come from results/variants/NAME and reuse the thumbnails."""
    results = make_fake_results(tmp_path / "proj", seeds=SEEDS, datasets=DATASETS)
    other = make_fake_results(tmp_path / "other", seeds=SEEDS, datasets=DATASETS)
    shutil.move(str(other), str(results / "variants" / "stain"))
    keys = run_keys([fake_split_seed], list(SEEDS))
    explore = explore_context(results, keys, list(DATASETS))
    n_images = {d: len(explore["data"].payload["datasets"][d]["images"]) for d in DATASETS}
    add_variant_runs(explore, results, ["paper", "stain"], "paper", keys, list(DATASETS))
    for d in DATASETS:
        entry = explore["data"].payload["datasets"][d]
        assert [(r["variant"], r["label"], r["main"]) for r in entry["runs"]] == [
            ("paper", "seed 1", True), ("paper", "seed 2", True),
            ("stain", "seed 1", False), ("stain", "seed 2", False)]
        assert len(entry["images"]) == n_images[d]


def test_script_json_cannot_end_the_script_element():
    evil = {"name": "</script><script>alert(1)</script><!-- & \u2028"}
    text = script_json(evil)
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == evil


def test_report_html_carries_the_explorer_safely(tmp_path, make_fake_results, render_fake):
    """Class and file names with markup stay data: two script elements (the JSON block and the explorer), the
    JSON parses back to the names, and every table.confusion cell names a class of its dataset."""
    evil = "<script>alert('x')"
    results = make_fake_results(tmp_path, seeds=(1,), datasets=("test", "ext"), classes=(evil, "b", "c"),
                                file_prefix="</script>f")
    _, html = render_fake(results, (1,), ("test", "ext"))
    assert html.lower().count("<script") == 2 and html.lower().count("</script>") == 2
    payload = json.loads(DATA_BLOCK.search(html).group(1))
    assert payload["datasets"]["test"]["classes"][0] == evil
    assert any("</script>f" in img[0] for img in payload["datasets"]["test"]["images"])
    tables = re.findall(r'<table class="confusion" data-dataset="([^"]*)"', html)
    assert tables and set(tables) <= set(payload["datasets"])


def test_summary_and_compare_documents_get_no_explorer(tmp_path, make_fake_results, render_fake):
    results = make_fake_results(tmp_path, seeds=(1,), datasets=("test",))
    assert "<script" not in render_fake(results, (1,), ("test",), "summary")[1].lower()


@pytest.mark.parametrize("name", ["explore.js", "explore.css"])
def test_inlined_files_are_plain_and_offline(name, templates):
    """Included by Jinja2 inside <script>/<style>: no template delimiters, nothing that ends the element, no URL
    (the report works without network)."""
    text = (templates / "partials" / name).read_text(encoding="utf-8")
    for bad in ("{{", "{%", "{#", "</script", "</style", "<!--", "http:", "https:", "file:", "url("):
        assert bad not in text.lower(), bad


def test_pdf_is_unchanged_by_the_explorer(tmp_path, make_fake_results, fake_config, fake_split_seed, run_info,
                                          templates):
    """WeasyPrint runs no script and skips @media screen: the report's PDF has the same pages and text with and
    without the explorer."""
    results = make_fake_results(tmp_path, seeds=(1,), datasets=("test",))
    ctx = report.build_context(results, fake_config((1,), ("test",)), [fake_split_seed], [1], ["test"], run_info)
    texts = []
    for explore in (ctx["explore"], None):
        html = tmp_path / f"report_{explore is None}.html"
        render.write_html(render.render_html({**ctx, "explore": explore}, templates), html)
        render.write_pdf(html, html.with_suffix(".pdf"))
        texts.append([page.extract_text() for page in PdfReader(html.with_suffix(".pdf")).pages])
    assert "explore-data" in (tmp_path / "report_False.html").read_text()
    assert len(texts[0]) == len(texts[1]) and texts[0] == texts[1]
