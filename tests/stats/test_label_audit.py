"""Suspected label errors: planted confident flips are flagged, clean rows are not; small, partial, one-class sets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from leukoreport.base.errors import LeukoError
from leukoreport.report.figures.label_audit import plot_suspects
from leukoreport.stats.label_audit import audit_summary, find_suspects

CLASSES = ["basophil", "eosinophil", "lymphocyte", "monocyte", "neutrophil"]


def table(true: np.ndarray, given: np.ndarray, confidence: float = 0.9, paths=None) -> pd.DataFrame:
    """Probabilities confident on the true class; labels as given."""
    n, k = len(true), len(CLASSES)
    probs = np.full((n, k), (1 - confidence) / (k - 1))
    probs[np.arange(n), true] = confidence
    df = pd.DataFrame({"path": paths or [f"img_{i:03d}.png" for i in range(n)],
                       "label": [CLASSES[g] for g in given],
                       "prediction": [CLASSES[t] for t in true]})
    for j, c in enumerate(CLASSES):
        df[f"prob_{c}"] = probs[:, j]
    df["loss"] = -np.log(probs[np.arange(n), given])
    return df


def flagged(got: pd.DataFrame) -> set[str]:
    return set(got.loc[got["suspected"], "path"])


def names(rows) -> set[str]:
    return {f"img_{i:03d}.png" for i in rows}


def test_planted_confident_flips_are_flagged_and_clean_rows_are_not():
    rng = np.random.default_rng(0)
    true = rng.integers(0, 5, 200)
    given = true.copy()
    flipped = rng.choice(200, 10, replace=False)
    given[flipped] = (true[flipped] + 1 + rng.integers(0, 4, 10)) % 5
    pred = table(true, given)
    got = find_suspects(pred, CLASSES)
    assert flagged(got) == names(flipped)
    assert list(got["rank"].head(10)) == list(range(1, 11)) and got["rank"].iloc[10:].isna().all()
    assert got["label_quality"].iloc[10:].is_monotonic_increasing
    assert set(pred.columns) <= set(got.columns) and len(got) == 200  # every row, every column kept
    summary = audit_summary(got)
    assert (summary["n"], summary["n_suspected"], summary["share"]) == (200, 10, 0.05)
    assert summary["method"].startswith("cleanlab") and sum(summary["per_class"].values()) == 10


def test_self_confidence_and_suggested_by_direct_computation():
    rng = np.random.default_rng(3)
    raw = rng.dirichlet(np.ones(5), 50)
    given = rng.integers(0, 5, 50)
    pred = pd.DataFrame({"path": [f"img_{i:03d}.png" for i in range(50)], "label": [CLASSES[g] for g in given]})
    for j, c in enumerate(CLASSES):
        pred[f"prob_{c}"] = raw[:, j]
    got = find_suspects(pred, CLASSES).set_index("path").loc[pred["path"]]
    np.testing.assert_allclose(got["self_confidence"], raw[np.arange(50), given])
    np.testing.assert_allclose(got["label_quality"], raw[np.arange(50), given])
    assert list(got["suggested"]) == [CLASSES[j] for j in raw.argmax(axis=1)]
    assert list(got["given"]) == list(pred["label"])


def test_one_class_set_falls_back_to_argmax_rule():
    true = np.array([3, 3, 3, 0, 3, 3, 4, 3, 4])
    pred = table(true, np.full(9, 3))
    pred.loc[6, [f"prob_{c}" for c in CLASSES]] = [0.1, 0.1, 0.1, 0.3, 0.4]  # argmax differs, p < 0.5
    got = find_suspects(pred, CLASSES)
    assert flagged(got) == names([3, 8])  # hand count: rows 3 and 8 disagree with p = 0.9; row 6 has 0.4
    assert got.attrs["method"].startswith("predicted_neq_given")
    assert audit_summary(got)["per_class"] == {"monocyte": 2}


def test_three_of_five_classes_present():
    rng = np.random.default_rng(1)
    true = rng.integers(0, 3, 60)
    given = true.copy()
    given[[3, 17, 40]] = (true[[3, 17, 40]] + 1) % 3
    got = find_suspects(table(true, given), CLASSES)
    assert flagged(got) == names([3, 17, 40])
    assert got.attrs["method"].startswith("cleanlab") and "argmax" not in got.attrs["method"]


def test_true_class_absent_from_the_set_is_still_flagged():
    # cleanlab alone flags none of rows 2 and 5: their argmax classes have no image labelled with them
    true = np.array([3, 3, 0, 3, 3, 4, 3, 3, 2, 2])
    given = np.array([3, 3, 3, 3, 3, 3, 3, 3, 2, 2])
    got = find_suspects(table(true, given), CLASSES)
    assert flagged(got) == names([2, 5])
    assert "cleanlab" in got.attrs["method"] and "predicted_neq_given" in got.attrs["method"]


def test_tiny_sets():
    got = find_suspects(table(np.array([0]), np.array([2])), CLASSES)  # one image
    assert flagged(got) == names([0])
    got = find_suspects(table(np.array([0, 1, 0]), np.array([0, 1, 2])), CLASSES)  # one image per class
    assert flagged(got) == names([2])


def test_bad_input_is_one_line():
    df = table(np.zeros(4, dtype=int), np.zeros(4, dtype=int))
    with pytest.raises(LeukoError, match="prob_monocyte"):
        find_suspects(df.drop(columns="prob_monocyte"), CLASSES)
    with pytest.raises(LeukoError, match="label 'Basophil' is not among"):
        find_suspects(df.assign(label="Basophil"), CLASSES)
    with pytest.raises(LeukoError, match="no rows"):
        find_suspects(df.iloc[:0], CLASSES)
    with pytest.raises(LeukoError, match="limit"):
        plot_suspects(find_suspects(df, CLASSES), "/nonexistent", limit=0)


def test_gallery_pages_with_odd_names(tmp_path):
    paths = ["MO_$\\frac$_1.png", "a <b> b.png", "MO_$5 and $6.png", "plain.png"]
    for name in paths:
        Image.new("RGB", (40, 30), (200, 100, 150)).save(tmp_path / name)
    got = find_suspects(table(np.array([0, 0, 0, 0]), np.array([3, 3, 3, 3]), paths=paths), CLASSES)
    assert got["suspected"].all()  # one given class: the argmax rule flags all four
    assert plot_suspects(got, tmp_path / "g", tmp_path, "Set $\\frac$ <b>", limit=2) == 4
    assert (tmp_path / "g" / "page-01.png").is_file()
    clean = find_suspects(table(np.array([0, 1, 2, 3]), np.array([0, 1, 2, 3]), paths=paths), CLASSES)
    assert plot_suspects(clean, tmp_path / "g", tmp_path, "none") == 0
    assert [p.name for p in (tmp_path / "g").glob("*.png")] == ["page-01.png"]
