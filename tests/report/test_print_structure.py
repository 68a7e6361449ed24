"""Page structure of the full report: the PDF prints one row per dataset in the tables over sets (robustness,
external sets, external validity, data) and each run's row in the dataset's side-by-side subsection; the per-set
detail sits in `html-only` blocks (hidden in print). Counts and values are recomputed from the fake run's files."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import pandas as pd
import pytest

from leukoreport.report import render

SEEDS = (3, 11, 7)
DATASETS = ("test", "ext", "lab2", "lab3")
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class _Node:
    def __init__(self, tag: str, attrs: dict, parent: _Node | None) -> None:
        self.tag, self.attrs, self.parent, self.children, self.text = tag, attrs, parent, [], []

    def classes(self) -> set[str]:
        return set((self.attrs.get("class") or "").split())

    def html_only(self) -> bool:
        """Whether this node or an ancestor is hidden in print."""
        node = self
        while node is not None:
            if "html-only" in node.classes():
                return True
            node = node.parent
        return False

    def all_text(self) -> str:
        return " ".join(" ".join([*self.text, *(c.all_text() for c in self.children)]).split())

    def find(self, pred) -> list[_Node]:
        out = [self] if pred(self) else []
        for c in self.children:
            out += c.find(pred)
        return out


class _Tree(HTMLParser):
    """The rendered HTML as a tree (the stdlib parser; void elements closed at once)."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.root = self.node = _Node("root", {}, None)
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        node = _Node(tag, dict(attrs), self.node)
        self.node.children.append(node)
        if tag not in VOID:
            self.node = node

    def handle_endtag(self, tag):
        node = self.node
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.node = node.parent

    def handle_data(self, data):
        self.node.text.append(data)


def _rows(table: _Node) -> list[list[str]]:
    """The body rows of a table, each as its cells' texts."""
    return [[c.all_text() for c in tr.children if c.tag in ("th", "td")]
            for body in table.children if body.tag == "tbody" for tr in body.children if tr.tag == "tr"]


def _overview(tree: _Tree, name: str) -> _Node:
    found = tree.root.find(lambda n: n.tag == "table" and n.attrs.get("data-overview") == name)
    assert len(found) == 1, name
    return found[0]


def _span(values, fmt) -> str:
    """Independent range text: one value when min and max print the same, else 'low–high' with one % sign; a dash
    when no run has a value."""
    values = [v for v in values if v is not None]
    if not values:
        return "—"
    low, high = fmt(min(values)), fmt(max(values))
    return low if low == high else f"{low.rstrip('%')}–{high}"


@pytest.fixture(scope="module")
def four(tmp_path_factory, make_fake_results, render_fake):
    results = make_fake_results(tmp_path_factory.mktemp("four"), seeds=SEEDS, datasets=DATASETS)
    ctx, html = render_fake(results, SEEDS, DATASETS)
    return results, ctx, html, _Tree(html)


def test_tables_over_sets_hold_one_printed_row_per_set(four):
    results, _, _, tree = four
    validity = pd.read_csv(results / "summary" / "validity.csv", dtype={"dataset": str})
    external = pd.read_csv(results / "summary" / "external.csv", dtype={"dataset": str})
    seeds = pd.read_csv(results / "summary" / "seeds.csv", dtype={"dataset": str})
    sets = sorted(p.stem for p in (results / "data" / "external").glob("*.csv"))
    every = list(dict.fromkeys(validity["dataset"]))
    expected = {"baselines": every, "shift": every, "images": every, "data": sets,
                "external": list(dict.fromkeys(external["dataset"])),
                "robustness": list(dict.fromkeys(seeds["dataset"]))}
    assert len(expected["baselines"]) == len(DATASETS) and len(expected["external"]) == len(DATASETS) - 1
    for name, datasets in expected.items():
        table = _overview(tree, name)
        assert not table.html_only(), name  # printed
        assert sorted(r[0] for r in _rows(table)) == sorted(datasets), name


def test_validity_overview_values_from_the_run_files(four, fake_split_seed):
    results, _, _, tree = four
    rows = {r[0]: r for r in _rows(_overview(tree, "baselines"))}
    shift = {r[0]: r for r in _rows(_overview(tree, "shift"))}
    for name in DATASETS:
        accs, aucs, lows = [], [], []
        for seed in SEEDS:
            folder = results / "splits" / str(fake_split_seed) / "seeds" / str(seed) / name
            pred = pd.read_csv(folder / "predictions.csv")
            accs.append(float((pred["label"] == pred["prediction"]).mean()))
            dom = json.loads((folder / "shift.json").read_text())["domain_classifier"]
            aucs.append(dom["auc"])
            lows.append(dom["low"])
        assert rows[name][1] == str(len(pred))
        assert rows[name][2] == _span(accs, lambda x: f"{100 * x:.1f}%")
        majority = pred["label"].value_counts()
        assert rows[name][3] == f"{100 * majority.iloc[0] / len(pred):.1f}% ({majority.index[0]})"
        assert shift[name][1] == _span(aucs, lambda x: f"{x:.3f}")
        assert shift[name][2] == f"{sum(low is not None and low > 0.5 for low in lows)} of {len(SEEDS)} runs"


def test_external_overview_values_from_the_predictions(four, fake_split_seed):
    results, _, _, tree = four
    rows = {r[0]: r for r in _rows(_overview(tree, "external"))}

    def accuracy(seed: int, name: str) -> float:
        pred = pd.read_csv(results / "splits" / str(fake_split_seed) / "seeds" / str(seed) / name / "predictions.csv")
        return float((pred["label"] == pred["prediction"]).mean())

    for name in DATASETS[1:]:
        gaps = [accuracy(s, name) - accuracy(s, "test") for s in SEEDS]
        low, high = (f"{100 * x:+.1f}".replace("-", "\u2212") for x in (min(gaps), max(gaps)))
        assert rows[name][5] == (f"{low} pp" if low == high else f"{low} to {high} pp")
        assert rows[name][3] == _span([accuracy(s, name) for s in SEEDS], lambda x: f"{100 * x:.1f}%")


def test_robustness_overview_counts_from_agreement(four):
    results, _, _, tree = four
    agree = pd.read_csv(results / "summary" / "agreement.csv", dtype={"dataset": str})
    for row in _rows(_overview(tree, "robustness")):
        sel = agree[agree["dataset"] == row[0]]
        right = int((sel["n_correct"] == sel["n_runs"]).sum())
        wrong, changed = int((sel["n_correct"] == 0).sum()), int((sel["n_predicted_classes"] > 1).sum())
        assert row[8] == f"{right} / {wrong} / {changed} of {len(sel)}"


def test_side_by_side_subsection_holds_each_runs_diagnostics(four):
    _, ctx, _, tree = four
    validity = {d["name"]: d["rows"] for d in ctx["validity"]["datasets"]}
    gaps = {(e["name"], r["label"]): str(r["gap"]) for e in ctx["external"] for r in e["rows"]}
    for name in DATASETS:
        tables = tree.root.find(lambda n, name=name: n.tag == "table" and "diagnostics" in n.classes()
                                and n.attrs.get("data-dataset") == name)
        assert len(tables) == 1 and not tables[0].html_only()
        rows = _rows(tables[0])
        assert [r[0] for r in rows] == [f"seed {s}" for s in SEEDS]
        for r, v in zip(rows, validity[name]):  # the same view model as the validity section's per-run table
            assert r[-5:] == [v["gain"], v["auc"], v["median_percentile"], v["beyond"], v["at_80"]]
            if name != "test":
                assert r[1] == gaps[(name, r[0])]
        agreement = tree.root.find(lambda n, name=name: n.tag == "section" and n.attrs.get("id") == f"dataset-{name}")
        sentence = agreement[0].find(lambda n: n.tag == "p" and "agreement" in n.classes())
        assert len(sentence) == 1 and not sentence[0].html_only()


def test_per_set_detail_is_html_only(four):
    _, ctx, _, tree = four
    # external sets: a per-run table per set, HTML only
    per_set = tree.root.find(lambda n: n.tag == "div" and "external-set" in n.classes())
    assert len(per_set) == len(DATASETS) - 1 and all(n.html_only() for n in per_set)
    # robustness: every metric's spread and the pairwise disagreement per dataset, HTML only
    for d in ctx["robustness"]["datasets"]:
        section = tree.root.find(lambda n, d=d: n.tag == "section" and n.attrs.get("id") == d["anchor"])[0]
        tables = section.find(lambda n: n.tag == "table")
        assert len(tables) == 2 and all(t.html_only() for t in tables)
    # external validity: per set its tables, OOD bands, image statistics and label audit, HTML only; the printed
    # figure is the median run's Grad-CAM page of the test split
    for d in ctx["validity"]["datasets"]:
        section = tree.root.find(lambda n, d=d: n.tag == "section" and n.attrs.get("id") == d["anchor"])[0]
        tables = section.find(lambda n: n.tag == "table")
        assert len(tables) >= 3 and all(t.html_only() for t in tables), d["name"]
        printed = [f for f in section.find(lambda n: n.tag == "figure") if not f.html_only()]
        assert len(printed) == (1 if d["name"] == "test" else 0)
        if printed:
            assert f"Where the model looks, {ctx['printed']['median']}, test split" in printed[0].all_text()


def test_pdf_prints_the_overview_not_the_detail(four, tmp_path):
    from pypdf import PdfReader

    _, _, html, _ = four
    render.write_html(html, tmp_path / "report.html")
    render.write_pdf(tmp_path / "report.html", tmp_path / "report.pdf")
    text = " ".join(" ".join(p.extract_text() or "" for p in PdfReader(str(tmp_path / "report.pdf")).pages).split())
    for heading in ("Baselines: accuracy against always answering the commonest class",
                    "Shift: how far each set lies from the training images",
                    "Image statistics and suspected label errors"):
        assert heading in text
    for detail in ("External set: ext", "External set: lab3", "Accuracy by OOD-score band",
                   "seed ensemble and per-image agreement", "images, classes present:"):
        assert detail not in text, detail
