"""Tests for leukoreport.stats.verdicts, each against an independent computation.

The references are loops, sklearn, statsmodels and scipy.
"""

from __future__ import annotations

import itertools
import json
import math
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score
from statsmodels.stats.multitest import multipletests

from leukoreport.base.errors import LeukoError
from leukoreport.base.metric_catalogue import HIGHER_IS_BETTER, METRICS
from leukoreport.compare import compare_runs
from leukoreport.stats import paired, verdicts
from leukoreport.stats.calibration import expected_calibration_error
from leukoreport.stats.run_files import load_run, match
from leukoreport.stats.verdicts import (
    compare_variants,
    holm,
    iqm,
    probability_of_improvement,
    stratified_bootstrap,
    variant_tables,
)

EXT_CLASSES = ["monocyte", "lymphocyte"]  # an external set holding only some of the classes


# --------------------------------------------------------------------------- fake runs with real probabilities

def prob_frame(images: pd.DataFrame, skill: float, seed: int, classes: list[str]) -> pd.DataFrame:
    """path,label,prediction,prob_* with softmax probabilities; `skill` pulls mass to the true class."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 1.0, size=(len(images), len(classes)))
    logits[np.arange(len(images)), [classes.index(c) for c in images["label"]]] += skill
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    out = images[["path", "label"]].copy()
    out["prediction"] = [classes[i] for i in probs.argmax(axis=1)]
    for j, c in enumerate(classes):
        out[f"prob_{c}"] = probs[:, j]
    out["loss"] = -np.log(probs[np.arange(len(images)), [classes.index(c) for c in images["label"]]])
    return out


def write_prob_run(runs, root: Path, skill: float, keys, datasets=("test", "ext"), offset: int = 0) -> Path:
    """A results folder with one predictions.csv per (split_seed, seed, dataset); returns its project folder.

    `runs` is the fake_runs fixture (image lists of its classes, its index writers)."""
    results = root / "results"
    rows = []
    for (split_seed, seed), dataset in itertools.product(keys, datasets):
        images = (runs.image_list(split_seed, per_class=30) if dataset == "test"
                  else runs.image_list(0, classes=EXT_CLASSES, per_class=12).assign(
                      path=lambda df: df["path"].str.replace("leukocytes", "external")))
        pred = prob_frame(images, skill, zlib.crc32(f"{split_seed}/{seed}/{dataset}/{offset}".encode()), runs.CLASSES)
        rows.append(runs.save_predictions(results, split_seed, seed, dataset, pred))
    runs.write_index(results, rows)
    return root


def read_pred(run: Path, split_seed: int, seed: int, dataset: str) -> pd.DataFrame:
    return pd.read_csv(run / "results" / "splits" / str(split_seed) / "seeds" / str(seed) / dataset /
                       "predictions.csv")


def sklearn_value(metric: str, pred: pd.DataFrame, classes: list[str]) -> float:
    """The metric of one predictions.csv, computed without leukoreport.compare."""
    if metric == "ece":
        probs = pred[[f"prob_{c}" for c in classes]].to_numpy()
        return expected_calibration_error(probs, pred["label"].map(classes.index).to_numpy(), 15)
    if metric == "accuracy":
        return accuracy_score(pred["label"], pred["prediction"])
    if metric == "balanced_accuracy":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "y_pred contains classes not in y_true" on the external set
            return balanced_accuracy_score(pred["label"], pred["prediction"])
    return f1_score(pred["label"], pred["prediction"], labels=sorted(set(pred["label"])), average="macro")


KEYS2 = ((7, 1), (7, 2), (42, 1), (42, 2))  # two split seeds: strata and grouped draws


@pytest.fixture(scope="module")
def prob_runs(tmp_path_factory, fake_runs):
    """Reference, an identical copy and a weaker variant, on two split seeds and two datasets."""
    root = tmp_path_factory.mktemp("prob")
    ref = write_prob_run(fake_runs, root / "ref", skill=3.0, keys=KEYS2)
    same = write_prob_run(fake_runs, root / "same", skill=3.0, keys=KEYS2)
    weak = write_prob_run(fake_runs, root / "weak", skill=1.5, keys=KEYS2, offset=1)
    return ref, same, weak


# --------------------------------------------------------------------------- statistics against direct computations

def test_holm_matches_statsmodels():
    rng = np.random.default_rng(0)
    for m in (1, 2, 5, 12, 40):
        p = rng.uniform(0, 0.2, size=m)
        if m > 2:
            p[1] = p[0]  # a tie
            p[-1] = 1.0
        np.testing.assert_allclose(holm(p), multipletests(p, method="holm")[1], rtol=0, atol=1e-15)
    ties = np.array([0.01, 0.04, 0.01, 0.04, 0.03, 0.0])
    np.testing.assert_allclose(holm(ties), multipletests(ties, method="holm")[1], atol=1e-15)
    np.testing.assert_allclose(holm([0.01, 0.02, 0.03]), [0.03, 0.04, 0.04])  # hand-worked: 3p, 2p, max(1p, 0.04)
    assert holm([]).size == 0
    with pytest.raises(LeukoError, match="holm"):
        holm([0.1, 1.5])


def test_iqm_sort_and_average_and_trim_mean():
    rng = np.random.default_rng(1)
    for n in (4, 8, 12, 20):
        v = rng.normal(size=n)
        middle = np.sort(v)[n // 4: 3 * n // 4]
        assert iqm(v) == pytest.approx(middle.mean(), abs=1e-14)
    for n in (1, 2, 3, 5, 7, 10):
        v = rng.normal(size=n)
        assert iqm(v) == pytest.approx(stats.trim_mean(v, 0.25), abs=1e-15)
    assert iqm([1, 2, 3, 100]) == 2.5
    with pytest.raises(LeukoError, match="iqm"):
        iqm([])


def test_stratified_bootstrap_matches_loop_and_keeps_strata():
    strata = [np.array([0.1, 0.4, 0.3]), np.array([10.2, 10.5, 10.1, 10.9, 10.7]), np.array([20.0])]
    n_resamples, seed = 200, 11
    got = stratified_bootstrap(strata, lambda v: v.mean(axis=-1), n_resamples, seed)
    rng = np.random.default_rng(seed)
    draws = [rng.integers(0, s.size, size=(n_resamples, s.size)) for s in strata]
    loop = [np.mean(np.concatenate([s[d[r]] for s, d in zip(strata, draws)])) for r in range(n_resamples)]
    np.testing.assert_allclose(got, loop, atol=1e-14)
    # each resample keeps 3 values from stratum 0, 5 from stratum 1 and 1 from stratum 2
    counts = stratified_bootstrap(strata, lambda v: ((v >= 10) & (v < 20)).sum(axis=-1), 50, 0)
    assert np.all(counts == 5)
    assert stratified_bootstrap([np.array([0.5])], lambda v: v.mean(axis=-1), 10, 0).tolist() == [0.5] * 10
    with pytest.raises(LeukoError, match="statistic returned shape"):
        stratified_bootstrap(strata, lambda v: v, 10, 0)


def test_probability_of_improvement_double_loop():
    rng = np.random.default_rng(2)
    x = np.round(rng.uniform(0.8, 0.9, size=7), 2)
    y = np.round(rng.uniform(0.8, 0.9, size=5), 2)  # rounding makes ties
    for higher in (True, False):
        wins = 0.0
        for xi in x:
            for yj in y:
                better = xi > yj if higher else xi < yj
                wins += 1.0 if better else (0.5 if xi == yj else 0.0)
        assert probability_of_improvement(x, y, higher) == pytest.approx(wins / (x.size * y.size), abs=1e-15)
    assert probability_of_improvement([0.9, 0.9], [0.9]) == 0.5
    assert probability_of_improvement([0.9], [0.8]) == 1.0
    assert probability_of_improvement([0.9], [0.8], higher_is_better=False) == 0.0


def test_bootstrap_p_value_hand_worked():
    from leukoreport.stats.verdicts import bootstrap_p

    boot = np.array([-0.01] + [0.02] * 8)  # R = 9: one resample <= 0, eight >= 0
    assert bootstrap_p(boot) == pytest.approx(2 * (1 + 1) / 10)
    assert bootstrap_p(np.full(99, -0.1)) == pytest.approx(2 / 100)  # the floor 2 / (R + 1)
    assert bootstrap_p(np.zeros(99)) == 1.0


# --------------------------------------------------------------------------- ECE in the paired bootstrap

def test_ece_bootstrap_equals_calibration_on_resampled_rows(prob_runs):
    ref, _, weak = prob_runs
    pairs = match(load_run(weak), load_run(ref))
    assert [(p.split_seed, p.seed) for p in pairs] == list(KEYS2)
    n_resamples, seed = 25, 3
    fast = paired.bootstrap_differences(pairs, "ece", n_resamples, seed)
    rng = np.random.default_rng(seed)
    slow = np.zeros(n_resamples)
    for group in ([pairs[0], pairs[1]], [pairs[2], pairs[3]]):  # split seed 7, then 42: the documented draw order
        idx = rng.integers(0, group[0].n, size=(n_resamples, group[0].n))
        for r in range(n_resamples):
            for p in group:
                slow[r] += (expected_calibration_error(p.probs_a[idx[r]], p.y_true[idx[r]], 15)
                            - expected_calibration_error(p.probs_b[idx[r]], p.y_true[idx[r]], 15))
    np.testing.assert_allclose(fast, slow / len(pairs), atol=1e-12)
    assert np.std(fast) > 0.001  # the resamples really differ
    p = pairs[0]
    idx = np.random.default_rng(9).integers(0, p.n, size=(4, p.n))
    vec = paired.metric_value("ece", p.y_true[idx], p.probs_a[idx].argmax(axis=-1), p.n_classes,
                               p.probs_a[idx].max(axis=-1), n_bins=10)
    np.testing.assert_allclose(vec, [expected_calibration_error(p.probs_a[i], p.y_true[i], 10) for i in idx],
                               atol=1e-13)
    # all metrics at once draw the same resamples as one metric at a time
    both = paired.bootstrap_metrics(pairs, ["accuracy", "ece"], n_resamples, seed)
    np.testing.assert_array_equal(both["ece"], fast)
    np.testing.assert_array_equal(both["accuracy"], paired.bootstrap_differences(pairs, "accuracy", n_resamples,
                                                                                  seed))


def test_ece_bootstrap_is_fast(prob_runs):
    ref, _, weak = prob_runs
    pairs = match(load_run(weak), load_run(ref))  # 4 pairs of 150 images
    start = time.perf_counter()
    paired.paired_bootstrap(pairs, "ece", n_resamples=9999)
    assert time.perf_counter() - start < 3.0


# --------------------------------------------------------------------------- compare_variants

def test_identical_variants_show_no_difference(prob_runs):
    ref, same, _ = prob_runs
    result = compare_variants({"ref": load_run(ref), "same": load_run(same)}, reference="ref", n_resamples=499)
    assert result["datasets"] == ["test", "ext"] and result["variants"] == ["ref", "same"]
    assert result["n_comparisons"] == 8 and len(result["comparisons"]) == 8 and len(result["summary"]) == 16
    for c in result["comparisons"]:
        assert c["difference"] == 0.0 and c["low"] == 0.0 and c["high"] == 0.0, c
        assert c["verdict"] == "no difference detected"
        assert c["p"] == 1.0 and c["p_holm"] == 1.0
        assert c["p_improvement"] == 0.5
        assert c["n_pairs"] == 4
    assert json.loads(json.dumps(result)) == result


def test_summary_values_and_intervals(prob_runs, fake_runs):
    ref, _, weak = prob_runs
    result = compare_variants({"ref": ref, "weak": weak}, reference="ref", n_resamples=300, seed=4,
                              confidence=0.9)
    rows = {(r["variant"], r["dataset"], r["metric"]): r for r in result["summary"]}
    for (name, run), dataset, metric in itertools.product([("ref", ref), ("weak", weak)], ("test", "ext"), METRICS):
        r = rows[(name, dataset, metric)]
        values = [sklearn_value(metric, read_pred(run, s, e, dataset), fake_runs.CLASSES) for s, e in KEYS2]
        np.testing.assert_allclose(r["values"], values, atol=1e-12)
        assert r["mean"] == pytest.approx(np.mean(values), abs=1e-12)
        assert r["sd"] == pytest.approx(np.std(values, ddof=1), abs=1e-12)
        assert r["iqm"] == pytest.approx(np.mean(np.sort(values)[1:3]), abs=1e-12)
        assert r["n_seeds"] == 4 and r["n_images"] == (150 if dataset == "test" else 24)
        # stratified by split seed (7: runs 0, 1; 42: runs 2, 3): a plain loop with the same draws
        rng = np.random.default_rng(4)
        d7, d42 = rng.integers(0, 2, size=(300, 2)), rng.integers(0, 2, size=(300, 2))
        means = [np.mean([values[i] for i in d7[k]] + [values[2 + i] for i in d42[k]]) for k in range(300)]
        assert (r["mean_low"], r["mean_high"]) == pytest.approx(tuple(np.percentile(means, [5, 95])), abs=1e-12)
    comps = {(c["dataset"], c["metric"]): c for c in result["comparisons"]}
    for dataset, metric in itertools.product(("test", "ext"), METRICS):
        x, y = rows[("weak", dataset, metric)]["values"], rows[("ref", dataset, metric)]["values"]
        better = (lambda a, b: a > b) if HIGHER_IS_BETTER[metric] else (lambda a, b: a < b)
        loop = np.mean([1.0 if better(a, b) else 0.5 if a == b else 0.0 for a in x for b in y])
        assert comps[(dataset, metric)]["p_improvement"] == pytest.approx(loop, abs=1e-15)
        assert comps[(dataset, metric)]["pi_low"] <= comps[(dataset, metric)]["pi_high"]


def test_planted_worse_variant(tmp_path, fake_runs):
    worse, base = fake_runs.worse_run(tmp_path / "worse"), fake_runs.baseline_run(tmp_path / "base")
    result = compare_variants({"base": base, "worse": worse}, reference="base", n_resamples=999)
    comps = {c["metric"]: c for c in result["comparisons"]}
    accuracy = [(fake_runs.FIXED[s] - fake_runs.PLANTED[s]) / 200 for s in fake_runs.SEEDS]
    assert comps["accuracy"]["difference"] == pytest.approx(np.mean(accuracy), abs=1e-15)
    for m in ("accuracy", "balanced_accuracy", "macro_f1"):
        assert comps[m]["verdict"] == "worse" and comps[m]["high"] < 0, m
        assert comps[m]["p_improvement"] == 0.0
    # every probability is 0.8: ECE = |accuracy - 0.8|, lower for the planted run, so it is better in ECE
    fixed, planted = fake_runs.FIXED, fake_runs.PLANTED
    ece = np.mean([abs(1 - (5 + s - fixed[s] + planted[s]) / 200 - 0.8) - abs(1 - (5 + s) / 200 - 0.8)
                   for s in fake_runs.SEEDS])
    assert comps["ece"]["difference"] == pytest.approx(ece, abs=1e-12)
    assert comps["ece"]["verdict"] == "better" and comps["ece"]["high"] < 0 and comps["ece"]["p_improvement"] == 1.0
    pairs = match(load_run(worse), load_run(base))
    for m, c in comps.items():
        boot = paired.bootstrap_differences(pairs, m, 999, 0)
        tail = min(np.sum(boot <= 0), np.sum(boot >= 0))
        assert c["p"] == pytest.approx(min(1.0, 2 * (1 + tail) / 1000))
    np.testing.assert_allclose([c["p_holm"] for c in result["comparisons"]],
                               multipletests([c["p"] for c in result["comparisons"]], method="holm")[1])


def test_too_few_resamples_give_no_verdict(tmp_path, fake_runs):
    worse, base = fake_runs.worse_run(tmp_path / "worse"), fake_runs.baseline_run(tmp_path / "base")
    result = compare_variants({"base": base, "worse": worse}, reference="base", n_resamples=99)
    acc = next(c for c in result["comparisons"] if c["metric"] == "accuracy")
    assert acc["high"] < 0 and acc["p"] == pytest.approx(0.02) and acc["p_holm"] == pytest.approx(0.08)
    assert acc["verdict"] == "no difference detected"
    assert any("smallest bootstrap p-value" in n for n in result["notes"])


def test_compare_runs_gives_the_same_numbers(prob_runs, fake_runs):
    ref, _, weak = prob_runs
    runs = compare_runs(weak, ref, n_resamples=499, seed=2)
    variants = compare_variants({"ref": load_run(ref), "weak": load_run(weak)}, reference="ref", n_resamples=499,
                                seed=2)
    assert list(runs["datasets"]) == variants["datasets"] == ["test", "ext"]
    assert runs["n_comparisons"] == variants["n_comparisons"] == 8
    keys = ("difference", "low", "high", "p", "p_holm", "verdict", "p_improvement", "pi_low", "pi_high")
    for c in variants["comparisons"]:
        got = runs["datasets"][c["dataset"]]["metrics"][c["metric"]]
        assert {k: got[k] for k in keys} == {k: c[k] for k in keys}, (c["dataset"], c["metric"])
    assert runs["metrics"] == runs["datasets"]["test"]["metrics"]
    ext = runs["datasets"]["ext"]
    assert [r["n"] for r in ext["seeds"]["matched"]] == [24] * 4
    pa, pb = read_pred(weak, 7, 1, "ext"), read_pred(ref, 7, 1, "ext")
    for m in METRICS:
        v = ext["per_seed"][0]["metrics"][m]
        expected = (sklearn_value(m, pa, fake_runs.CLASSES), sklearn_value(m, pb, fake_runs.CLASSES))
        assert (v["a"], v["b"]) == pytest.approx(expected, abs=1e-12), m
    assert sum(c["verdict"] == "worse" for c in variants["comparisons"] if c["metric"] == "accuracy") == 2
    only = compare_runs(weak, ref, n_resamples=499, seed=2, dataset="ext")
    assert list(only["datasets"]) == ["ext"] and only["dataset"] == "ext" and only["n_comparisons"] == 4
    assert only["metrics"]["accuracy"]["low"] == runs["datasets"]["ext"]["metrics"]["accuracy"]["low"]


def test_datasets_not_evaluated_by_all_are_skipped(prob_runs, tmp_path, fake_runs):
    ref, _, weak = prob_runs
    test_only = write_prob_run(fake_runs, tmp_path / "test_only", skill=2.0, keys=KEYS2, datasets=("test",))
    result = compare_variants({"ref": ref, "weak": weak, "test_only": test_only}, reference="ref", n_resamples=50)
    assert result["datasets"] == ["test"]
    assert result["skipped"] == [{"dataset": "ext", "variant": "test_only", "reason": "not evaluated by test_only"}]
    assert result["n_comparisons"] == 8
    summary, comparisons = variant_tables(result)
    assert len(summary) == 12 and len(comparisons) == 8
    assert list(comparisons.columns[:4]) == ["variant", "reference", "dataset", "metric"]
    assert summary["values"].iloc[0] == ";".join(repr(v) for v in result["summary"][0]["values"])
    with pytest.raises(LeukoError, match="run test_only .* no rows for dataset 'ext'"):
        compare_variants({"ref": ref, "test_only": test_only}, reference="ref", datasets=["ext"], n_resamples=50)


def test_bad_arguments_are_one_line_errors(prob_runs):
    ref, same, _ = prob_runs
    cases = [({"reference": "nope"}, "reference = 'nope' is not one of the variants"),
             ({"reference": "ref", "metrics": ["recall"]}, "metrics = ['recall']"),
             ({"reference": "ref", "n_resamples": 0}, "n_resamples = 0"),
             ({"reference": "ref", "confidence": 1.0}, "confidence = 1.0"),
             ({"reference": "ref", "n_bins": 0}, "n_bins = 0")]
    for kwargs, text in cases:
        with pytest.raises(LeukoError) as info:
            compare_variants({"ref": ref, "same": same}, **kwargs)
        assert text in str(info.value) and "\n" not in str(info.value)
    assert math.isclose(compare_variants({"ref": ref}, reference="ref", n_resamples=20)["alpha"], 0.05)


def test_verdict_that_seed_variation_does_not_support_gets_a_note():
    base = {"variant": "b", "label": "accuracy", "dataset": "ext", "difference": 0.2, "low": 0.1, "high": 0.3}
    shaky = {**base, "verdict": "better", "p_improvement": 0.78, "pi_low": 0.33, "pi_high": 1.0,
             "beats_seed_noise": False}
    solid = {**base, "verdict": "better", "p_improvement": 1.0, "pi_low": 0.9, "pi_high": 1.0, "beats_seed_noise": True}
    none = {**base, "verdict": "no difference detected", "p_improvement": 0.5, "pi_low": 0.2, "pi_high": 0.8,
            "beats_seed_noise": False}
    texts = [" ".join(verdicts._notes({}, "a", [], rows, [], 9999, 0.05)) for rows in ([shaky], [solid], [none])]
    assert "b accuracy on ext (better; P(improvement) 0.78 [0.33–1.00])" in texts[0]
    assert "seed-to-seed" in texts[0]
    assert "seed-to-seed" not in texts[1] and "seed-to-seed" not in texts[2]
