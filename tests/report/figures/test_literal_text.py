"""Names from files, folders, classes and sets are drawn literally in every figure ('$' is not mathtext)."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.text
import pandas as pd
import pytest

from leukoreport.data.image_stats import statistics_table
from leukoreport.report.figures.dataset import plot_confusion, plot_per_class, plot_reliability
from leukoreport.report.figures.galleries import plot_error_gallery, plot_top_losses
from leukoreport.report.figures.image_shift import plot_distributions
from leukoreport.report.figures.leakage import plot_pair_gallery
from leukoreport.report.figures.seeds import plot_seed_values
from leukoreport.report.figures.style import LITERAL_TEXT, STYLE, WIDE_STYLE
from leukoreport.stats.metrics import read_predictions

CLASSES = ("a$1$", "b $5 and $6", r"c$\frac$")
EXTERNAL = r"ext_$\frac$"
PREFIX = r"MO_$\frac$_<b>"


@pytest.fixture(scope="module")
def fake(tmp_path_factory, make_fake_results):
    root = tmp_path_factory.mktemp("literal")
    return root, make_fake_results(root, seeds=(1,), datasets=("test", EXTERNAL), classes=CLASSES,
                                   file_prefix=PREFIX)


@pytest.fixture
def drawn(monkeypatch):
    """Every text matplotlib draws that holds a '$': (text, parse_math)."""
    seen: list[tuple[str, bool]] = []
    original = matplotlib.text.Text.draw

    def spy(self, renderer):
        if "$" in self.get_text():
            seen.append((self.get_text(), self.get_parse_math()))
        return original(self, renderer)

    monkeypatch.setattr(matplotlib.text.Text, "draw", spy)
    return seen


def test_every_style_draws_text_literally():
    assert LITERAL_TEXT == {"text.parse_math": False}
    assert STYLE["text.parse_math"] is False and WIDE_STYLE["text.parse_math"] is False


def test_dataset_figures_draw_names_literally(fake, drawn, tmp_path):
    """Confusion matrix, per-class bars, reliability, error gallery and top losses of a set whose class, file and
    set names hold '$', '\\frac' and '<b>': nothing raises and every such text is drawn without mathtext."""
    root, results = fake
    folder = results / "splits/42/seeds/1" / EXTERNAL
    metrics = json.loads((folder / "metrics.json").read_text())
    metrics["dataset"] = EXTERNAL
    pred = read_predictions(folder / "predictions.csv", list(CLASSES))
    pred_test = read_predictions(results / "splits/42/seeds/1/test/predictions.csv", list(CLASSES))
    assert (pred_test["label"] != pred_test["prediction"]).any()
    plot_confusion(metrics, tmp_path / "confusion.png", title=f"seed 1 on {EXTERNAL}")
    plot_per_class(metrics, tmp_path / "per_class.png")
    plot_reliability(metrics, tmp_path / "reliability.png")
    plot_error_gallery(pred_test, list(CLASSES), tmp_path / "errors", root=root)
    plot_top_losses(pred, list(CLASSES), tmp_path / "top.png", root=root)
    texts = {t for t, _ in drawn}
    assert any(r"\frac" in t for t in texts) and any("$5 and $6" in t for t in texts)
    assert any(PREFIX[:6] in t for t in texts)  # a file name reached a gallery caption
    assert [t for t, literal in drawn if literal] == []


def test_pair_gallery_and_shift_figures_draw_names_literally(fake, drawn, tmp_path):
    """Duplicate-pair pages and image-statistics panels with '$' in paths and the set name."""
    root, results = fake
    pairs = pd.read_csv(results / "splits/42/audit/leakage.csv")
    assert plot_pair_gallery(pairs, tmp_path / "pairs", root=root) == len(pairs)
    split = pd.read_csv(results / "splits/42/split.csv")
    train = statistics_table(list(split.loc[split["split"] == "train", "path"]), root=root)
    other = statistics_table(list(pd.read_csv(results / f"data/external/{EXTERNAL}.csv")["path"]), root=root)
    plot_distributions(train, other, EXTERNAL, tmp_path / "shift.png")
    table = pd.read_csv(results / "summary/metrics.csv")
    plot_seed_values(table, EXTERNAL, tmp_path / "seeds.png")
    texts = [t for t, _ in drawn]
    assert any(EXTERNAL in t for t in texts) and any(PREFIX[:6] in t for t in texts)
    assert [t for t, literal in drawn if literal] == []
    assert all(Path(p).stat().st_size > 0 for p in (tmp_path / "pairs").glob("*.png"))

