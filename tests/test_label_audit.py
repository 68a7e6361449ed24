"""Suspected label errors: planted confident flips are flagged, clean rows are not; small and one-class sets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from leukoreport.errors import LeukoError
from leukoreport.label_audit import audit_summary, find_suspects, plot_suspects

CLASSES = ["basophil", "eosinophil", "lymphocyte", "monocyte", "neutrophil"]


def table(true: np.ndarray, given: np.ndarray, confidence: float = 0.9, paths=None) -> pd.DataFrame:
    """Probabilities confident on the true class; labels as given."""
    n, k = len(true), len(CLASSES)
    probs = np.full((n, k), (1 - confidence) / (k - 1))
    probs[np.arange(n), true] = confidence
    df = pd.DataFrame({"path": paths or [f"img_{i:03d}.png" for i in range(n)],
                       "label": [CLASSES[g] for g in given]})
    for j, c in enumerate(CLASSES):
        df[f"prob_{c}"] = probs[:, j]
    return df


def test_planted_confident_flips_are_flagged_and_clean_rows_are_not():
    rng = np.random.default_rng(0)
    true = rng.integers(0, 5, 200)
    given = true.copy()
    flipped = rng.choice(200, 10, replace=False)
    given[flipped] = (true[flipped] + 1 + rng.integers(0, 4, 10)) % 5
    got = find_suspects(table(true, given), CLASSES)
    suspects = set(got.loc[got["suspected"], "path"])
    assert suspects == {f"img_{i:03d}.png" for i in flipped}
    assert list(got["rank"].head(10)) == list(range(1, 11)) and got["rank"].iloc[10:].isna().all()
    # self-confidence is the probability of the given label; suggested is the argmax (a direct computation)
    by_path = got.set_index("path")
    for i in range(200):
        row = by_path.loc[f"img_{i:03d}.png"]
        assert row["self_confidence"] == pytest.approx(0.9 if given[i] == true[i] else 0.025)
        assert row["suggested"] == CLASSES[true[i]] and row["given"] == CLASSES[given[i]]
    summary = audit_summary(got)
    assert (summary["n"], summary["n_suspected"], summary["share"]) == (200, 10, 0.05)
    assert summary["method"].startswith("cleanlab") and sum(summary["per_class"].values()) == 10


def test_three_of_five_classes_present():
    rng = np.random.default_rng(1)
    true = rng.integers(0, 3, 60)
    given = true.copy()
    given[[3, 17, 40]] = (true[[3, 17, 40]] + 1) % 3
    got = find_suspects(table(true, given), CLASSES)
    assert set(got.loc[got["suspected"], "path"]) == {"img_003.png", "img_017.png", "img_040.png"}


def test_one_class_set_falls_back_to_argmax_disagreement():
    true = np.array([3, 3, 3, 0, 3, 3, 4, 3, 3])
    probs = table(true, np.full(9, 3))
    probs.loc[6, [f"prob_{c}" for c in CLASSES]] = [0.1, 0.1, 0.1, 0.3, 0.4]  # argmax differs but p < 0.5
    got = find_suspects(probs, CLASSES)
    hand = {f"img_{i:03d}.png" for i in (3,)}  # only row 3 disagrees with probability >= 0.5
    assert set(got.loc[got["suspected"], "path"]) == hand
    assert got.attrs["method"].startswith("predicted_neq_given")


def test_bad_input_is_one_line():
    df = table(np.zeros(4, dtype=int), np.zeros(4, dtype=int)).drop(columns="prob_monocyte")
    with pytest.raises(LeukoError, match="prob_monocyte"):
        find_suspects(df, CLASSES)
    df = table(np.zeros(4, dtype=int), np.zeros(4, dtype=int)).assign(label="Basophil")
    with pytest.raises(LeukoError, match="label 'Basophil' is not among"):
        find_suspects(df, CLASSES)


def test_gallery_pages_with_odd_names(tmp_path):
    names = ["MO_$\\frac$_1.png", "a <b> b.png", "MO_$5 and $6.png", "plain.png"]
    for name in names:
        Image.new("RGB", (40, 30), (200, 100, 150)).save(tmp_path / name)
    got = find_suspects(table(np.array([0, 0, 0, 0]), np.array([3, 3, 3, 3]), paths=names), CLASSES)
    assert got["suspected"].all()  # one given class: the argmax fallback flags all four
    assert plot_suspects(got, tmp_path / "g", tmp_path, "Set $x$", limit=2) == 4
    assert (tmp_path / "g" / "page-01.png").is_file()
    clean = find_suspects(table(np.array([0, 1, 2, 3]), np.array([0, 1, 2, 3]), paths=names), CLASSES)
    assert plot_suspects(clean, tmp_path / "g", tmp_path) == 0 and len(list((tmp_path / "g").glob("*.png"))) == 1
