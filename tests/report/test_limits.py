"""Report size caps (config `report_limits`): galleries and tables show at most the configured number of images,
most informative first, and say how many they leave out and which CSV lists them all."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
from PIL import Image

from leukoreport.base.errors import LeukoError
from leukoreport.data.leakage import PAIR_COLUMNS
from leukoreport.report.figures import style
from leukoreport.report.figures.galleries import plot_agreement_gallery, plot_error_gallery
from leukoreport.report.figures.label_audit import plot_suspects
from leukoreport.report.figures.leakage import plot_pair_gallery
from leukoreport.report.gallery_rows import pair_rows
from leukoreport.report.limits import REPORT_LIMITS, report_limits
from leukoreport.stats.metrics import read_predictions

ROOT = Path(__file__).resolve().parents[2]
CLASSES = ["a", "b", "c"]


@pytest.fixture
def drawn(monkeypatch):
    """Record every thumbnail the galleries open and the title of every figure they save."""
    seen = {"thumbs": [], "titles": []}
    thumbnail, save = style.thumbnail, style.save_figure

    def counting_thumbnail(path):
        seen["thumbs"].append(Path(path).name)
        return thumbnail(path)

    def titled_save(fig, out, **kwargs):
        seen["titles"].append(fig._suptitle.get_text() if fig._suptitle is not None else "")
        save(fig, out, **kwargs)

    monkeypatch.setattr(style, "thumbnail", counting_thumbnail)
    monkeypatch.setattr(style, "save_figure", titled_save)
    return seen


def write_images(paths, root: Path) -> None:
    for i, rel in enumerate(paths):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (7 * i % 255, 90, 160)).save(root / rel)


def errors_frame(n: int, n_wrong: int) -> pd.DataFrame:
    """`n` predictions, the first `n_wrong` wrong with distinct, shuffled confidences (some tied)."""
    rows = []
    for i in range(n):
        wrong = i < n_wrong
        conf = 0.4 + 0.5 * ((i * 37) % n_wrong) / n_wrong if wrong else 0.9
        if wrong and i % 7 == 0:
            conf = 0.6  # ties, broken by path
        pred = "b" if wrong else "a"
        rows.append({"path": f"imgs/x_{(i * 13) % n:03d}.png", "label": "a", "prediction": pred,
                     "prob_a": 1 - conf if wrong else conf, "prob_b": conf if wrong else 1 - conf, "prob_c": 0.0,
                     "loss": 1.0})
    return pd.DataFrame(rows).sample(frac=1.0, random_state=3).reset_index(drop=True)


def independent_error_order(pred: pd.DataFrame) -> list[str]:
    wrong = [r for r in pred.to_dict("records") if r["label"] != r["prediction"]]
    return [r["path"] for r in sorted(wrong, key=lambda r: (-r[f"prob_{r['prediction']}"], r["path"]))]


def test_error_gallery_caps_and_orders(tmp_path: Path, drawn):
    pred = errors_frame(60, 40)
    write_images(pred["path"], tmp_path)
    out = tmp_path / "errors"
    assert plot_error_gallery(pred, CLASSES, out, root=tmp_path, columns=3, rows=2, limit=7) == 40
    expected = independent_error_order(pred)[:7]
    assert drawn["thumbs"] == [Path(p).name for p in expected]  # 7 thumbnails, most confident first
    assert sorted(p.name for p in out.glob("page-*.png")) == ["page-01.png", "page-02.png"]
    meta = json.loads((out / "gallery.json").read_text())
    assert (meta["total"], meta["shown"], meta["not_shown"]) == (40, 7, 33)
    assert meta["paths"] == expected
    sentence = "showing 7 of 40 misclassified images (33 not shown); all are listed in predictions.csv"
    assert meta["note"] == sentence
    assert len(drawn["titles"]) == 2 and all(sentence in t for t in drawn["titles"])
    assert meta["titles"] == drawn["titles"]


def test_error_gallery_fewer_than_the_cap(tmp_path: Path, drawn):
    pred = errors_frame(20, 5)
    write_images(pred["path"], tmp_path)
    assert plot_error_gallery(pred, CLASSES, tmp_path / "errors", root=tmp_path, limit=30) == 5
    assert drawn["thumbs"] == [Path(p).name for p in independent_error_order(pred)]
    meta = json.loads((tmp_path / "errors" / "gallery.json").read_text())
    assert (meta["shown"], meta["not_shown"], meta["note"]) == (5, 0, "")
    assert "not shown" not in drawn["titles"][0] and "5 errors in 20 images" in drawn["titles"][0]
    with pytest.raises(LeukoError, match="limit"):
        plot_error_gallery(pred, CLASSES, tmp_path / "errors", root=tmp_path, limit=0)


SCOPES = ["within split", "across splits", "training vs external", "within external", "across external sets"]


def pairs_frame(n: int) -> pd.DataFrame:
    rows = []
    for i in range(n):
        exact = i % 4 == 0
        rows.append({"path_a": f"p/a_{i:02d}.png", "label_a": "a", "group_a": "train",
                     "path_b": f"p/b_{i:02d}.png", "label_b": "a" if i % 5 else "b", "group_b": "test",
                     "distance": 0 if exact else (i * 3) % 5, "kind": "exact" if exact else "near",
                     "scope": SCOPES[(i * 7) % 5], "same_label": bool(i % 5)})
    return pd.DataFrame(rows, columns=PAIR_COLUMNS)


def independent_pair_order(pairs: pd.DataFrame) -> list[int]:
    """Row numbers (1 = first) most informative first, sorted in plain Python."""
    rank = {"across splits": 0, "training vs external": 1, "within split": 2, "within external": 3,
            "across external sets": 4}
    rows = list(enumerate(pairs.to_dict("records"), start=1))
    rows.sort(key=lambda t: (t[1]["kind"] != "exact", t[1]["same_label"], rank[t[1]["scope"]], t[1]["distance"], t[0]))
    return [number for number, _ in rows]


def test_pair_rows_order_matches_independent_sort():
    pairs = pairs_frame(23)
    assert list(pair_rows(pairs)["number"]) == independent_pair_order(pairs)
    assert list(pair_rows(pairs, 4)["number"]) == independent_pair_order(pairs)[:4]
    # flags read back from a CSV as text sort the same
    as_text = pairs.astype({"same_label": str})
    assert list(pair_rows(as_text)["number"]) == independent_pair_order(pairs)
    first = pair_rows(pairs).iloc[0]
    assert first["kind"] == "exact" and not first["same_label"]


def test_pair_gallery_caps_and_orders(tmp_path: Path, drawn):
    pairs = pairs_frame(23)
    write_images(list(pairs["path_a"]) + list(pairs["path_b"]), tmp_path)
    out = tmp_path / "pairs"
    assert plot_pair_gallery(pairs, out, root=tmp_path, per_page=2, limit=5) == 23
    order = independent_pair_order(pairs)[:5]
    expected = [name for n in order for name in (f"a_{n - 1:02d}.png", f"b_{n - 1:02d}.png")]
    assert drawn["thumbs"] == expected  # 5 pairs = 10 thumbnails
    assert len(list(out.glob("page-*.png"))) == 3
    meta = json.loads((out / "gallery.json").read_text())
    assert meta["rows"] == order and (meta["total"], meta["shown"]) == (23, 5)
    sentence = "showing 5 of 23 duplicate pairs (18 not shown); all are listed in leakage.csv"
    assert all(sentence in t for t in drawn["titles"]) and len(drawn["titles"]) == 3
    # fewer pairs than the cap: every one, no left-out sentence
    drawn["thumbs"].clear(), drawn["titles"].clear()
    assert plot_pair_gallery(pairs.head(3), out, root=tmp_path, limit=16) == 3
    assert len(drawn["thumbs"]) == 6 and "not shown" not in drawn["titles"][0]


def test_agreement_gallery_caps(tmp_path: Path, drawn):
    rows = []
    for i in range(12):
        rows.append({"path": f"ag/c_{i:02d}.png", "label": "a", "n_runs": 3, "n_correct": (i * 5) % 3,
                     "majority": "b", "always_wrong": False, "unstable": True})
    agreement = pd.DataFrame(rows).sample(frac=1.0, random_state=2)
    write_images(agreement["path"], tmp_path)
    out = tmp_path / "rob" / "split42_test_unstable.png"
    assert plot_agreement_gallery(agreement, "unstable", out, root=tmp_path, limit=4) == 12
    expected = sorted(rows, key=lambda r: (r["n_correct"], r["path"]))[:4]
    assert drawn["thumbs"] == [Path(r["path"]).name for r in expected]
    sentence = "showing 4 of 12 images whose prediction changes (8 not shown); all are listed in agreement.csv"
    assert sentence in drawn["titles"][0]
    assert json.loads(out.with_suffix(".json").read_text())["note"] == sentence


def test_label_gallery_caps(tmp_path: Path, drawn):
    n = 9
    table = pd.DataFrame({"path": [f"lab/s_{i}.png" for i in range(n)], "given": "a", "suggested": "b",
                          "self_confidence": [0.01 * i for i in range(n)], "suspected": [i < 6 for i in range(n)],
                          "rank": pd.array([*range(1, 7), *[pd.NA] * 3], dtype="Int64")})
    write_images(table["path"], tmp_path)
    assert plot_suspects(table, tmp_path / "g", tmp_path, "Set x", limit=4) == 6
    assert drawn["thumbs"] == [f"s_{i}.png" for i in range(4)]
    assert ("showing 4 of 6 suspected label errors (2 not shown); all are listed in label_issues.csv"
            in drawn["titles"][0])


def test_report_limits_config():
    assert report_limits(None) == REPORT_LIMITS
    assert report_limits({"report_limits": {"errors": 5}})["errors"] == 5
    with pytest.raises(LeukoError, match="report_limits.errors"):
        report_limits({"report_limits": {"errors": 0}})
    with pytest.raises(LeukoError, match="unknown key 'thumbs'"):
        report_limits({"report_limits": {"thumbs": 3}})
    # the defaults of the code, the schema and every shipped config agree
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    props = schema["properties"]["report_limits"]["properties"]
    assert {k: v["default"] for k, v in props.items()} == REPORT_LIMITS
    for name in ("config.yaml", "smoke.yaml", "variants.yaml", "smoke_variants.yaml"):
        assert yaml.safe_load((ROOT / "config" / name).read_text())["report_limits"] == REPORT_LIMITS, name


@pytest.fixture(scope="module")
def capped(tmp_path_factory, make_fake_results, fake_split_seed, fake_config, render_fake):
    """A fake results folder whose galleries are drawn by the real functions with caps of 1, and its report."""
    root = tmp_path_factory.mktemp("proj")
    seeds, datasets = (11,), ("test", "ext")  # seed 11: 2 and 3 errors
    results = make_fake_results(root, seeds=seeds, datasets=datasets)
    split_dir = results / "splits" / str(fake_split_seed)
    for name in datasets:
        folder = split_dir / "seeds" / "11" / name
        pred = read_predictions(folder / "predictions.csv", ["a", "b", "c"])
        plot_error_gallery(pred, ["a", "b", "c"], folder / "errors", root=root, limit=1)
    pairs = pd.read_csv(split_dir / "audit" / "leakage.csv")
    plot_pair_gallery(pairs, split_dir / "audit" / "pairs", root=root, limit=1)
    agreement = pd.read_csv(results / "summary" / "agreement.csv", dtype={"path": str})
    for name in datasets:
        rows = agreement[agreement["dataset"] == name]
        for kind in ("always_wrong", "unstable"):
            out = results / "summary" / "robustness" / f"split{fake_split_seed}_{name}_{kind}.png"
            plot_agreement_gallery(rows, kind, out, root=root, limit=1)
    config = {**fake_config(seeds, datasets),
              "report_limits": {"errors": 1, "error_rows": 1, "pairs": 1, "pair_rows": 1, "label_rows": 1}}
    return results, *render_fake(results, seeds, datasets, config=config)


def test_report_caps_tables_and_says_what_is_left_out(capped, fake_split_seed):
    results, ctx, html = capped
    text = re.sub(r"\s+", " ", html)
    for d in ctx["seeds"][0]["datasets"]:
        csv = f"results/splits/{fake_split_seed}/seeds/11/{d['name']}/predictions.csv"
        pred = pd.read_csv(results / "splits" / str(fake_split_seed) / "seeds" / "11" / d["name"] / "predictions.csv")
        assert d["n_errors"] == int((pred["label"] != pred["prediction"]).sum()) >= 2
        assert [e["file"] for e in d["errors"]] == independent_error_order(pred)[:1]
        n = d["n_errors"]
        sentence = f"showing 1 of {n} misclassified images ({n - 1} not shown); all are listed in {csv}"
        assert d["errors_note"] == sentence and f"Table below, most confident first: {sentence}." in text
        assert d["gallery"]["note"] == f"S{sentence[1:]}." and d["gallery"]["note"] in text
    audit = ctx["leakage"][0]
    assert [p["number"] for p in audit["pairs"]] == [1]  # the exact pair across splits, row 1 of leakage.csv
    sentence = ("showing 1 of 2 duplicate pairs (1 not shown); all are listed in "
                f"results/splits/{fake_split_seed}/audit/leakage.csv")
    assert f"Table below: {sentence}." in text and f"S{sentence[1:]}." in text
    assert text.count("<td>exact</td>") + text.count("<td>near</td>") == 1


def test_report_label_rows_and_agreement_notes(capped):
    _, ctx, html = capped
    text = re.sub(r"\s+", " ", html)
    audits = [a for d in ctx["validity"]["datasets"] for a in d["label_audit"] if a["n_suspected"] > 1]
    assert audits, "the fake results should have a set with several suspects"
    for a in audits:
        assert len(a["rows"]) == 1 and a["n_left_out"] == a["n_suspected"] - 1
        assert f"{a['n_left_out']} more are in {a['listed_in']}" in text
    notes = [n for d in ctx["robustness"]["datasets"] for sp in d["splits"] for n in sp["gallery_notes"].values() if n]
    assert notes and all(n in text and "all are listed in results/summary/agreement.csv" in n for n in notes)
