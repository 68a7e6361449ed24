"""Tests for leukoreport.compare, stats.paired and stats.run_files on synthetic runs whose answers are known."""

from __future__ import annotations

import itertools
import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

from leukoreport.base.errors import LeukoError
from leukoreport.compare import compare_runs, conclusion, verdict, write_comparison
from leukoreport.stats import paired
from leukoreport.stats.paired import mcnemar, paired_bootstrap, sign_flip_test, wilcoxon_p
from leukoreport.stats.run_files import Pair, load_run, match

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"


@pytest.fixture(scope="module")
def planted(tmp_path_factory, fake_runs):
    """Run A (planted errors) and run B (baseline) and their comparison with 999 resamples."""
    root = tmp_path_factory.mktemp("planted")
    a = fake_runs.worse_run(root / "worse")
    b = fake_runs.baseline_run(root / "base")
    return a, b, compare_runs(a, b, n_resamples=999, seed=0)


def _read(run: Path, seed: int, split_seed: int) -> pd.DataFrame:
    return pd.read_csv(run / "results" / "splits" / str(split_seed) / "seeds" / str(seed) / "test" / "predictions.csv")


# --------------------------------------------------------------------------- identical runs

def test_identical_runs_show_no_difference(tmp_path, fake_runs):
    a = fake_runs.baseline_run(tmp_path / "one")
    b = fake_runs.baseline_run(tmp_path / "two")
    result = compare_runs(a, b, n_resamples=499)
    assert result["runs"]["a"]["name"] == "one" and result["runs"]["b"]["name"] == "two"
    for _m, r in result["metrics"].items():
        assert r["difference"] == 0.0
        assert r["low"] <= 0.0 <= r["high"]
        assert r["p_a_better"] == 0.0 and r["p_b_better"] == 0.0
        assert r["sign_flip_p"] == 1.0 and r["wilcoxon_p"] is None
        assert r["conclusion"].startswith("No difference detected in ")
        assert "better" not in r["conclusion"] and "worse" not in r["conclusion"]
    assert result["metrics"]["accuracy"]["conclusion"] == \
        "No difference detected in accuracy: one \u2212 two = +0.0 pp [+0.0 to +0.0]."
    assert "no difference" in result["verdict"] and "better" not in result["verdict"]
    for row in result["per_seed"]:
        assert row["mcnemar"] == {"b": 0, "c": 0, "p": 1.0}


def test_same_name_runs_are_told_apart(tmp_path, fake_runs):
    run = fake_runs.baseline_run(tmp_path / "same", seeds=(1,))
    result = compare_runs(run, run / "results", n_resamples=50)
    assert result["runs"]["a"]["name"] == "same (A)" and result["runs"]["b"]["name"] == "same (B)"


# --------------------------------------------------------------------------- planted errors

def test_planted_errors_make_a_worse(planted, fake_runs):
    a, b, result = planted
    acc = result["metrics"]["accuracy"]
    # accuracy difference per seed is (FIXED - PLANTED) / 200, by construction
    expected = [(fake_runs.FIXED[s] - fake_runs.PLANTED[s]) / 200 for s in fake_runs.SEEDS]
    assert acc["per_seed_differences"] == pytest.approx(expected, abs=1e-15)
    assert acc["difference"] == pytest.approx(np.mean(expected), abs=1e-15)
    for m, r in result["metrics"].items():
        assert r["high"] < 0, m
        assert r["low"] <= r["difference"] <= r["high"]
        # ECE: every prediction has confidence 0.8, so ECE = |accuracy - 0.8| and A (closer to 0.8) is better
        word, (p_a, p_b) = ("better", (1.0, 0.0)) if m == "ece" else ("worse", (0.0, 1.0))
        assert (r["p_a_better"], r["p_b_better"]) == (p_a, p_b), m
        assert r["verdict"] == word and r["p_holm"] < 0.05, m
        assert r["conclusion"].startswith(f"worse is {word} than base in {r['label']}: worse \u2212 base = ")
        assert "No difference" not in r["conclusion"]
    fixed, planted = fake_runs.FIXED, fake_runs.PLANTED
    ece = [abs(1 - (5 + s - fixed[s] + planted[s]) / 200 - 0.8) - abs(1 - (5 + s) / 200 - 0.8) for s in fake_runs.SEEDS]
    assert result["metrics"]["ece"]["per_seed_differences"] == pytest.approx(ece, abs=1e-12)
    assert result["verdict"] == ("Overall, the result is mixed on the test split: worse is better than base in ECE "
                                 "but worse in accuracy, balanced accuracy and macro F1.")


def test_per_seed_metrics_match_sklearn(planted, fake_runs):
    a, b, result = planted
    for row in result["per_seed"]:
        pa, pb = _read(a, row["seed"], fake_runs.SPLIT), _read(b, row["seed"], fake_runs.SPLIT)
        pa = pa.set_index("path")
        pb = pb.set_index("path").loc[pa.index]
        for m, func in [("accuracy", accuracy_score), ("balanced_accuracy", balanced_accuracy_score),
                        ("macro_f1", lambda t, p: f1_score(t, p, labels=fake_runs.CLASSES, average="macro"))]:
            va, vb = func(pa["label"], pa["prediction"]), func(pb["label"], pb["prediction"])
            got = row["metrics"][m]
            assert got["a"] == pytest.approx(va, abs=1e-12) and got["b"] == pytest.approx(vb, abs=1e-12), m
            assert got["difference"] == pytest.approx(va - vb, abs=1e-12), m
    for m, r in result["metrics"].items():
        assert r["a_mean"] == pytest.approx(np.mean([row["metrics"][m]["a"] for row in result["per_seed"]]))


def test_mcnemar_counts_and_p_match_a_plain_loop_and_scipy(planted, fake_runs):
    a, b, result = planted
    for row in result["per_seed"]:
        pa, pb = _read(a, row["seed"], fake_runs.SPLIT), _read(b, row["seed"], fake_runs.SPLIT)
        lookup = dict(zip(pb["path"], pb["prediction"]))
        only_a = only_b = 0
        for path, label, pred in zip(pa["path"], pa["label"], pa["prediction"]):
            right_a, right_b = pred == label, lookup[path] == label
            only_a += right_a and not right_b
            only_b += right_b and not right_a
        assert (only_a, only_b) == (fake_runs.FIXED[row["seed"]], fake_runs.PLANTED[row["seed"]])
        mc = row["mcnemar"]
        assert (mc["b"], mc["c"]) == (only_a, only_b)
        assert mc["p"] == pytest.approx(stats.binomtest(only_a, only_a + only_b, 0.5).pvalue, rel=1e-12)
        assert mc["p"] < 1e-5


def test_sign_flip_and_wilcoxon_across_planted_seeds(planted):
    _, _, result = planted
    for r in result["metrics"].values():
        d = r["per_seed_differences"]
        flips = [abs(np.mean([s * x for s, x in zip(signs, d)])) for signs in itertools.product((1, -1), repeat=3)]
        assert r["sign_flip_p"] == pytest.approx(sum(f >= abs(np.mean(d)) - 1e-12 for f in flips) / 8)
        assert r["sign_flip_p"] == pytest.approx(0.25)  # all three seeds worse: 2 of 8 sign patterns
        assert r["wilcoxon_p"] == pytest.approx(0.25)  # exact: ranks all negative, 2 of 8 sign patterns


def test_mcnemar_hand_worked():
    y = np.zeros(10, dtype=int)
    a = np.array([0, 1, 1, 1, 1, 1, 1, 0, 0, 0])  # right on 0, 7, 8, 9
    b = np.array([1, 0, 0, 0, 0, 0, 0, 1, 0, 0])  # right on 1..6, 8, 9
    res = mcnemar(y, a, b)
    assert (res.b, res.c) == (2, 6)  # only A right: 0, 7; only B right: 1..6
    assert res.p == pytest.approx(2 * (1 + 8 + 28) / 256)  # 2 P(X <= 2), X ~ Bin(8, 1/2)
    assert mcnemar(y, y, y).p == 1.0
    assert mcnemar(y, a, a).to_dict() == {"b": 0, "c": 0, "p": 1.0}
    with pytest.raises(LeukoError, match="mcnemar"):
        mcnemar(y, a[:5], b)


def test_sign_flip_test_matches_enumeration():
    d = [0.1, -0.02, 0.05, 0.03, 0.07]
    observed = abs(np.mean(d))
    count = sum(abs(np.mean([s * x for s, x in zip(signs, d)])) >= observed - 1e-12
                for signs in itertools.product((1, -1), repeat=len(d)))
    assert sign_flip_test(d) == pytest.approx(count / 2 ** len(d))
    assert sign_flip_test([0.2]) == 1.0
    assert sign_flip_test([0.0, 0.0]) == 1.0
    assert sign_flip_test([0.1, 0.1, 0.1, 0.1]) == pytest.approx(2 / 16)


def test_sign_flip_test_random_flips_agree_with_enumeration():
    d = np.random.default_rng(3).normal(0.01, 0.03, size=18)
    bits = (np.arange(2 ** 18)[:, None] >> np.arange(18)) & 1
    exact = float(np.mean(np.abs((1 - 2 * bits) @ d) / 18 >= abs(d.mean()) - 1e-12))
    approx = sign_flip_test(d, seed=1)
    assert abs(approx - exact) < 4 * math.sqrt(exact * (1 - exact) / 20000) + 1e-4


def test_wilcoxon_p_none_when_undefined():
    assert wilcoxon_p([0.1]) is None
    assert wilcoxon_p([0.0, 0.0, 0.0]) is None
    assert wilcoxon_p([-0.1, -0.2, -0.3, -0.4]) == pytest.approx(2 / 16)


# --------------------------------------------------------------------------- bootstrap

def _slow_bootstrap(pairs: list[Pair], metric: str, n_resamples: int, seed: int) -> np.ndarray:
    """Loop version: the documented draw order, metrics from sklearn on each resample."""
    funcs = {"accuracy": accuracy_score, "balanced_accuracy": balanced_accuracy_score,
             "macro_f1": lambda t, p: f1_score(t, p, labels=sorted(set(t)), average="macro")}
    rng = np.random.default_rng(seed)
    groups: dict[tuple, list[Pair]] = {}
    for p in pairs:
        groups.setdefault(tuple(p.paths), []).append(p)
    out = np.zeros(n_resamples)
    for members in groups.values():
        n = members[0].n
        idx = rng.integers(0, n, size=(n_resamples, n))
        for r in range(n_resamples):
            for p in members:
                t = p.y_true[idx[r]]
                out[r] += funcs[metric](t, p.pred_a[idx[r]]) - funcs[metric](t, p.pred_b[idx[r]])
    return out / len(pairs)


@pytest.mark.parametrize("metric", ["accuracy", "balanced_accuracy", "macro_f1"])
def test_bootstrap_matches_slow_loop(tmp_path, metric, fake_runs):
    # two split seeds (two image sets) and two training seeds each: exercises the grouping of draws
    preds_a, preds_b = {}, {}
    for split_seed in (7, 42):
        for seed in (1, 2):
            base = fake_runs.baseline_predictions(seed, split_seed)
            preds_b[(split_seed, seed)] = base
            preds_a[(split_seed, seed)] = fake_runs.worsen(base, 6 + seed, 2, seed=seed + split_seed)
    pairs = match(load_run(fake_runs.write_run(tmp_path / "a", preds_a)),
                  load_run(fake_runs.write_run(tmp_path / "b", preds_b)))
    assert [(p.split_seed, p.seed) for p in pairs] == [(7, 1), (7, 2), (42, 1), (42, 2)]
    slow = _slow_bootstrap(pairs, metric, 60, seed=5)
    fast = paired.bootstrap_differences(pairs, metric, 60, seed=5)
    np.testing.assert_allclose(fast, slow, atol=1e-12)
    for confidence, (q_low, q_high) in [(0.8, (10, 90)), (0.95, (2.5, 97.5))]:
        res = paired_bootstrap(pairs, metric, n_resamples=60, seed=5, confidence=confidence)
        assert res.low == pytest.approx(np.percentile(slow, q_low), abs=1e-12)
        assert res.high == pytest.approx(np.percentile(slow, q_high), abs=1e-12)
        assert res.p_a_better == pytest.approx(np.mean(slow > 1e-12))
        assert res.p_b_better == pytest.approx(np.mean(slow < -1e-12))


def test_bootstrap_interval_agrees_with_normal_theory(planted):
    # accuracy difference on one seed: per-image d_i in {-1, 0, 1}; SE of the mean is sd(d)/sqrt(n)
    a, b, _ = planted
    pairs = match(load_run(a), load_run(b))[:1]
    d = (pairs[0].pred_a == pairs[0].y_true).astype(float) - (pairs[0].pred_b == pairs[0].y_true)
    se = d.std() / math.sqrt(d.size)
    res = paired_bootstrap(pairs, "accuracy", n_resamples=4000, seed=1)
    assert res.low == pytest.approx(d.mean() - 1.96 * se, abs=0.012)
    assert res.high == pytest.approx(d.mean() + 1.96 * se, abs=0.012)


def test_bootstrap_is_fast(tmp_path, fake_runs):
    split = fake_runs.SPLIT
    preds = {(split, s): fake_runs.image_list(split, per_class=75).assign(prediction=lambda df: df["label"])
             for s in fake_runs.SEEDS}
    worse = {k: fake_runs.worsen(v, 20, 0, seed=k[1]) for k, v in preds.items()}
    pairs = match(load_run(fake_runs.write_run(tmp_path / "a", worse)),
                  load_run(fake_runs.write_run(tmp_path / "b", preds)))
    assert [p.n for p in pairs] == [375, 375, 375]
    for metric in ("accuracy", "balanced_accuracy", "macro_f1"):
        start = time.perf_counter()
        paired_bootstrap(pairs, metric, n_resamples=9999)
        assert time.perf_counter() - start < 2.0, metric


# --------------------------------------------------------------------------- words

def test_conclusion_sentences():
    assert conclusion("accuracy", 0.003, -0.012, 0.018, "A", "B") == \
        "No difference detected in accuracy: A \u2212 B = +0.3 pp [\u22121.2 to +1.8]."
    assert conclusion("macro_f1", -0.05, -0.08, -0.02, "new", "old") == \
        "new is worse than old in macro F1: new \u2212 old = \u22125.0 pp [\u22128.0 to \u22122.0]."
    assert conclusion("balanced_accuracy", 0.05, 0.001, 0.09, "new", "old").startswith(
        "new is better than old in balanced accuracy: ")
    assert conclusion("accuracy", 0.0, 0.0, 0.0, "A", "B").startswith("No difference detected")


def test_verdict_sentences():
    assert verdict({"accuracy": 0, "macro_f1": 0}, "A", "B") == \
        "Overall, no difference between A and B was detected on the test split in any metric."
    assert verdict({"accuracy": 1, "balanced_accuracy": 0, "macro_f1": 1}, "A", "B") == \
        ("Overall, A is better than B on the test split in accuracy and macro F1 "
         "(no difference detected in balanced accuracy).")
    assert verdict({"accuracy": 1, "macro_f1": -1}, "A", "B", "ext") == \
        "Overall, the result is mixed on 'ext': A is better than B in accuracy but worse in macro F1."


# --------------------------------------------------------------------------- loading and matching

def test_load_run_accepts_project_and_results_folders(tmp_path, fake_runs):
    project = fake_runs.baseline_run(tmp_path / "proj", seeds=(1, 2))
    flat = fake_runs.baseline_run(tmp_path / "flat_results", seeds=(1, 2), layout="results")
    for path, name in [(project, "proj"), (project / "results", "proj"), (flat, "flat_results")]:
        run = load_run(path)
        assert run.name == name
        assert run.classes == fake_runs.CLASSES
        assert list(run.index["seed"]) == [1, 2]


def test_unmatched_seeds_are_reported_not_fatal(tmp_path, fake_runs):
    a = fake_runs.baseline_run(tmp_path / "a", seeds=(1, 2, 3))
    b = fake_runs.worse_run(tmp_path / "b", seeds=(2, 3))
    result = compare_runs(a, b, n_resamples=99)
    assert result["seeds"]["matched"] == [{"split_seed": fake_runs.SPLIT, "seed": 2, "n": 200},
                                          {"split_seed": fake_runs.SPLIT, "seed": 3, "n": 200}]
    assert result["seeds"]["only_a"] == [{"split_seed": fake_runs.SPLIT, "seed": 1}]
    assert result["seeds"]["only_b"] == []
    assert any("Only a has split 42 seed 1" in n for n in result["notes"])
    assert result["metrics"]["accuracy"]["direction"] == 1  # b has the planted errors


def _one_line_error(func, *args, match_text: str) -> str:
    with pytest.raises(LeukoError) as info:
        func(*args)
    message = str(info.value)
    assert "\n" not in message
    assert match_text in message, message
    return message


def test_error_missing_run_folder(tmp_path):
    missing = tmp_path / "nope"
    message = _one_line_error(load_run, missing, match_text="run folder not found")
    assert missing.as_posix() in message
    (tmp_path / "empty").mkdir()
    _one_line_error(load_run, tmp_path / "empty", match_text="no summary/metrics.csv")


def test_error_missing_index_columns(tmp_path, fake_runs):
    run = fake_runs.baseline_run(tmp_path / "r", seeds=(1,))
    index = run / "results" / "summary" / "metrics.csv"
    pd.read_csv(index).drop(columns=["predictions", "split_seed"]).to_csv(index, index=False)
    message = _one_line_error(load_run, run, match_text="missing column(s)")
    assert index.as_posix() in message and "predictions" in message and "split_seed" in message


def test_error_different_class_sets(tmp_path, fake_runs):
    other = fake_runs.CLASSES[:4] + ["platelet"]
    a = fake_runs.baseline_run(tmp_path / "a", seeds=(1,))
    preds = fake_runs.baseline_predictions(1, classes=other)
    b = fake_runs.write_run(tmp_path / "b", {(fake_runs.SPLIT, 1): preds}, classes=other)
    message = _one_line_error(match, load_run(a), load_run(b), match_text="runs a and b have different classes")
    assert "neutrophil" in message and "platelet" in message


def test_error_different_test_paths(tmp_path, fake_runs):
    a = fake_runs.baseline_run(tmp_path / "a", seeds=(1, 2))
    preds = {(fake_runs.SPLIT, s): fake_runs.baseline_predictions(s) for s in (1, 2)}
    moved = preds[(fake_runs.SPLIT, 2)].copy()
    moved.loc[:6, "path"] = [f"elsewhere/{i}.jpg" for i in range(7)]
    preds[(fake_runs.SPLIT, 2)] = moved
    b = fake_runs.write_run(tmp_path / "b", preds)
    message = _one_line_error(match, load_run(a), load_run(b),
                              match_text="runs a and b were not evaluated on the same test split: 14 image path(s)")
    assert "seed 2" in message


def test_error_no_shared_seed(tmp_path, fake_runs):
    a = fake_runs.baseline_run(tmp_path / "a", seeds=(1,))
    b = fake_runs.baseline_run(tmp_path / "b", seeds=(2,))
    _one_line_error(match, load_run(a), load_run(b), match_text="share no (split_seed, seed)")
    _one_line_error(match, load_run(a), load_run(b), "ext", match_text="no rows for dataset 'ext'")


def test_error_index_disagrees_with_predictions(tmp_path, fake_runs):
    a = fake_runs.baseline_run(tmp_path / "a", seeds=(1,))
    b = fake_runs.baseline_run(tmp_path / "b", seeds=(1,))
    index = b / "results" / "summary" / "metrics.csv"
    pd.read_csv(index).assign(n_correct=1).to_csv(index, index=False)
    _one_line_error(match, load_run(a), load_run(b), match_text="but summary/metrics.csv says 1/200")


def test_error_bad_settings(tmp_path, fake_runs):
    a = fake_runs.baseline_run(tmp_path / "a", seeds=(1,))
    _one_line_error(compare_runs, a, a, 0, match_text="n_resamples = 0")
    _one_line_error(compare_runs, a, a, 10, 0, 1.5, match_text="confidence = 1.5")
    pairs = match(load_run(a), load_run(a))
    _one_line_error(paired_bootstrap, pairs, "recall", match_text="metric = 'recall'")


# --------------------------------------------------------------------------- writing

def test_write_comparison(planted, tmp_path):
    _, _, result = planted
    paths = write_comparison(result, tmp_path / "out", TEMPLATES)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["compare.html", "compare.json", "compare.pdf"]
    assert json.loads(paths["json"].read_text()) == result
    html = paths["html"].read_text(encoding="utf-8")
    first = html.index(result["metrics"]["accuracy"]["conclusion"])
    assert first < html.index("Per metric") < html.index("Per seed") < html.index("How to read this")
    assert result["verdict"] in html
    assert ">\u221213.5<" in html  # seed 1 accuracy difference (3 - 30) / 200 in pp
    assert '<td class="num gstart">3</td><td class="num">30</td>' in html  # McNemar b, c of seed 1
    assert paths["pdf"].read_bytes().startswith(b"%PDF")
    from pypdf import PdfReader

    assert len(PdfReader(paths["pdf"]).pages) <= 2


def test_write_comparison_bad_templates(planted, tmp_path):
    _, _, result = planted
    _one_line_error(write_comparison, result, tmp_path / "out", tmp_path, match_text="no compare.html.j2")
    assert not (tmp_path / "out").exists()


def test_compare_import_is_light():
    import subprocess
    import sys

    code = "import sys, leukoreport.compare; print('torch' in sys.modules, 'fastai' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]
