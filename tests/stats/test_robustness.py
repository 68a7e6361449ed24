"""Robustness over seeds: spread, variance components, agreement, disagreement, ensemble, robustness.json."""

from __future__ import annotations

import json
import math
import statistics
from itertools import combinations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from leukoreport.base.errors import LeukoError
from leukoreport.base.metric_catalogue import METRICS
from leukoreport.config.settings import Uncertainty
from leukoreport.stats.metrics import compute_metrics, prob_columns, read_predictions
from leukoreport.stats.robustness import (
    DISAGREEMENT_COLUMNS,
    across_seeds,
    agreement,
    disagreement,
    ensemble,
    one_way_anova,
    robustness_summary,
    seed_table,
    spread,
    variance_components,
)

ABC = ["a", "b", "c"]
FAST = Uncertainty.defaults(n_resamples=99)


def pred_table(paths: list[str], labels: list[str], predictions: list[str], classes: list[str] = ABC,
               probs: list[list[float]] | None = None) -> pd.DataFrame:
    """A predictions.csv-like table; default probabilities 0.7 on the prediction, rest shared."""
    rows = []
    for i, (path, y, p) in enumerate(zip(paths, labels, predictions)):
        if probs is None:
            row_p = [0.7 if c == p else 0.3 / (len(classes) - 1) for c in classes]
        else:
            row_p = probs[i]
        row = {"path": path, "label": y, "prediction": p}
        row.update({f"prob_{c}": v for c, v in zip(classes, row_p)})
        row["loss"] = -math.log(max(row_p[classes.index(y)], 1e-15))
        rows.append(row)
    return pd.DataFrame(rows)


def fake_metrics(split_seed, seed, dataset, accuracy, recalls: dict, ece=0.05, classes=ABC) -> dict:
    """A minimal metrics.json-like dict with split_seed added; recall None marks an absent class."""
    return {"split_seed": split_seed, "seed": seed, "dataset": dataset, "n": 20, "n_correct": round(20 * accuracy),
            "accuracy": accuracy, "balanced_accuracy": accuracy - 0.01, "macro_f1": accuracy - 0.02,
            "calibration": {"ece": ece, "brier": 0.2, "log_loss": 0.4}, "classes": list(classes),
            "classes_present": [c for c in classes if recalls.get(c) is not None],
            "per_class": {c: {"present": recalls.get(c) is not None, "recall": recalls.get(c)} for c in classes}}


def table_of(rows: list[tuple]) -> pd.DataFrame:
    """A seed table from (split_seed, seed, dataset, accuracy) tuples; other metrics derived."""
    return seed_table([fake_metrics(s, t, d, acc, {"a": acc, "b": 1 - acc, "c": None}, ece=acc / 10)
                       for s, t, d, acc in rows])


# ---------------------------------------------------------------- seed_table

def test_seed_table_columns_values_and_absent_class():
    table = seed_table([fake_metrics(42, 1, "test", 0.9, {"a": 0.8, "b": 1.0, "c": 0.9}),
                        fake_metrics(42, 1, "ext", 0.5, {"a": 0.5, "b": None, "c": None}, ece=0.2)])
    assert list(table.columns) == ["split_seed", "seed", "dataset", "n", "accuracy", "balanced_accuracy",
                                   "macro_f1", "ece", "brier", "log_loss", "recall_a", "recall_b", "recall_c"]
    assert table["dataset"].tolist() == ["test", "ext"]
    assert table.loc[0, ["split_seed", "seed", "n"]].tolist() == [42, 1, 20]
    assert table.loc[0, "macro_f1"] == pytest.approx(0.88)
    assert table.loc[1, "ece"] == pytest.approx(0.2)
    assert table.loc[0, ["recall_a", "recall_b", "recall_c"]].tolist() == pytest.approx([0.8, 1.0, 0.9])
    assert table.loc[1, "recall_a"] == pytest.approx(0.5)
    assert np.isnan(table.loc[1, "recall_b"]) and np.isnan(table.loc[1, "recall_c"])


def test_seed_table_from_compute_metrics():
    pred = pred_table([f"p{i}" for i in range(6)], list("aabbaa"), list("abbbaa"))
    m = compute_metrics(pred, ABC, "test", 3, FAST)
    row = seed_table([{**m, "split_seed": 7}]).iloc[0]
    assert (row["split_seed"], row["seed"], row["n"]) == (7, 3, 6)
    assert row["accuracy"] == pytest.approx(5 / 6)
    # recall a = 3/4 (one a predicted as b), recall b = 2/2; c absent
    assert row["recall_a"] == pytest.approx(0.75) and row["recall_b"] == pytest.approx(1.0)
    assert np.isnan(row["recall_c"])
    assert row["balanced_accuracy"] == pytest.approx((0.75 + 1.0) / 2)
    assert row["ece"] == pytest.approx(m["calibration"]["ece"])
    assert row["log_loss"] == pytest.approx(np.mean(pred["loss"]))


@pytest.mark.parametrize("change, message", [
    (lambda m: m.pop("split_seed"), "split_seed"),
    (lambda m: m.update(split_seed="42"), "split_seed"),
    (lambda m: m["calibration"].pop("ece"), "ece"),
    (lambda m: m.update(classes=["a", "b"]), "classes"),
    (lambda m: m["per_class"].pop("c"), "'c'"),
])
def test_seed_table_rejects_bad_metrics(change, message):
    good = fake_metrics(42, 1, "test", 0.9, {"a": 0.9, "b": 0.9, "c": 0.9})
    bad = fake_metrics(42, 2, "test", 0.9, {"a": 0.9, "b": 0.9, "c": 0.9})
    change(bad)
    with pytest.raises(LeukoError, match=message) as err:
        seed_table([good, bad])
    assert "metrics[1]" in str(err.value)


def test_seed_table_rejects_empty_and_duplicates():
    with pytest.raises(LeukoError, match="empty"):
        seed_table([])
    m = fake_metrics(42, 1, "test", 0.9, {"a": 0.9})
    with pytest.raises(LeukoError, match="more than once"):
        seed_table([m, dict(m)])


# ---------------------------------------------------------------- across_seeds

def test_across_seeds_hand_worked():
    table = table_of([(42, 1, "test", 0.8), (42, 2, "test", 0.9), (42, 3, "test", 1.0)])
    acc = across_seeds(table)["test"]["accuracy"]
    # mean 0.9, deviations -0.1, 0, 0.1 -> variance 0.02 / 2 = 0.01 -> sd 0.1; t(0.975, 2) = 4.3026527297
    half = 4.302652729749462 * 0.1 / math.sqrt(3)
    assert acc["n_runs"] == 3
    assert acc["mean"] == pytest.approx(0.9) and acc["sd"] == pytest.approx(0.1)
    assert acc["t_low"] == pytest.approx(0.9 - half) and acc["t_high"] == pytest.approx(0.9 + half)
    assert (acc["min"], acc["max"]) == pytest.approx((0.8, 1.0))
    assert acc["values"] == pytest.approx([0.8, 0.9, 1.0])


def test_across_seeds_against_statistics_module():
    rng = np.random.default_rng(3)
    values = rng.uniform(0.7, 0.95, 5).tolist()
    table = table_of([(1, s, "test", v) for s, v in enumerate(values)])
    ece = across_seeds(table, confidence=0.9)["test"]["ece"]
    eces = [v / 10 for v in values]
    mean, sd = statistics.mean(eces), statistics.stdev(eces)
    half = stats.t.ppf(0.95, 4) * sd / math.sqrt(5)
    assert ece["mean"] == pytest.approx(mean) and ece["sd"] == pytest.approx(sd)
    assert (ece["t_low"], ece["t_high"]) == pytest.approx((mean - half, mean + half))
    assert ece["values"] == pytest.approx(eces)


def test_across_seeds_order_single_run_and_absent_classes():
    table = seed_table([fake_metrics(42, 1, "ext", 0.5, {"a": 0.5}),
                        fake_metrics(42, 1, "test", 0.9, {"a": 0.9, "b": 0.8, "c": 0.7}),
                        fake_metrics(42, 2, "test", 0.7, {"a": 0.6, "b": None, "c": 0.5})])
    result = across_seeds(table)
    assert list(result) == ["ext", "test"]
    assert list(result["ext"]) == [*METRICS, "recall_a"]  # b and c absent from ext
    single = result["ext"]["accuracy"]
    assert single == {"n_runs": 1, "mean": 0.5, "sd": None, "t_low": None, "t_high": None,
                      "min": 0.5, "max": 0.5, "values": [0.5]}
    assert list(result["test"]) == [*METRICS, "recall_a", "recall_b", "recall_c"]
    assert result["test"]["recall_b"]["n_runs"] == 1  # NaN of seed 2 skipped
    assert result["test"]["recall_c"]["values"] == pytest.approx([0.7, 0.5])
    json.dumps(result, allow_nan=False)


def test_spread_of_identical_values_has_zero_width():
    s = spread([0.8, 0.8, float("nan"), 0.8])
    assert (s.n_runs, s.sd, s.t_low, s.t_high) == (3, 0.0, pytest.approx(0.8), pytest.approx(0.8))
    assert spread([]).n_runs == 0 and spread([]).mean is None


def test_across_seeds_rejects_bad_input():
    table = table_of([(42, 1, "test", 0.8), (42, 2, "test", 0.9)])
    with pytest.raises(LeukoError, match="confidence"):
        across_seeds(table, confidence=1.5)
    with pytest.raises(LeukoError, match=r"missing column\(s\) \['ece'\]"):
        across_seeds(table.drop(columns="ece"))
    with pytest.raises(LeukoError, match="no rows"):
        across_seeds(table.iloc[:0])
    with pytest.raises(LeukoError, match="more than once"):
        across_seeds(pd.concat([table, table.iloc[:1]]))


# ---------------------------------------------------------------- variance_components

def test_variance_components_hand_worked_2x2():
    table = table_of([(1, 1, "test", 0.80), (1, 2, "test", 0.84), (2, 1, "test", 0.90), (2, 2, "test", 0.94)])
    vc = variance_components(table)["test"]["accuracy"]
    # split means 0.82, 0.92, grand mean 0.87
    # MSB = 2 * (0.05^2 + 0.05^2) / 1 = 0.01 ; MSW = 4 * 0.02^2 / (2 * 1) = 0.0008
    # var_split = (0.01 - 0.0008) / 2 = 0.0046 ; share = 0.0046 / 0.0054 = 23/27
    assert (vc["n_splits"], vc["seeds_per_split"]) == (2, 2)
    assert vc["ms_between"] == pytest.approx(0.01)
    assert vc["ms_within"] == pytest.approx(0.0008)
    assert vc["sd_initialisation"] == pytest.approx(math.sqrt(0.0008))
    assert vc["sd_split"] == pytest.approx(math.sqrt(0.0046))
    assert vc["share_split"] == pytest.approx(23 / 27)
    assert set(variance_components(table)["test"]) == set(METRICS)


def test_variance_components_3x2_against_numpy_and_scipy():
    rng = np.random.default_rng(11)
    x = rng.uniform(0.6, 0.95, (3, 2))
    rows = [(split, seed, "test", x[i, j]) for i, split in enumerate((5, 6, 7)) for j, seed in enumerate((1, 2))]
    vc = variance_components(table_of(rows))["test"]["accuracy"]
    msw = x.var(axis=1, ddof=1).mean()  # pooled within-split variance
    msb = 2 * x.mean(axis=1).var(ddof=1)  # n times the variance of split means
    assert vc["ms_within"] == pytest.approx(msw) and vc["ms_between"] == pytest.approx(msb)
    assert vc["ms_between"] / vc["ms_within"] == pytest.approx(stats.f_oneway(*x).statistic)
    var_split = max(0.0, (msb - msw) / 2)
    assert vc["sd_split"] == pytest.approx(math.sqrt(var_split))
    assert vc["share_split"] == pytest.approx(var_split / (var_split + msw))


def test_variance_components_degenerate_cases():
    # splits differ less than seeds: MSB < MSW -> sd_split 0, share 0
    inside = one_way_anova([[0.8, 0.9], [0.81, 0.89]])
    assert inside.ms_between < inside.ms_within
    assert inside.sd_split == 0.0 and inside.share_split == 0.0
    # nothing varies -> share undefined
    flat = one_way_anova([[0.8, 0.8, 0.8]] * 3)  # np.mean of three 0.8s is not exactly 0.8
    assert (flat.sd_split, flat.sd_initialisation, flat.share_split) == (0.0, 0.0, None)
    # seeds never matter: all variance from the split, MSB = 3 * 2 * 0.3^2 / 1 = 0.54
    by_split = one_way_anova([[0.1] * 3, [0.7] * 3])
    assert (by_split.ms_within, by_split.share_split) == (0.0, 1.0)
    assert by_split.ms_between == pytest.approx(0.54) and by_split.sd_split == pytest.approx(0.3 * math.sqrt(2))
    # splits never matter: identical groups, MSW = 3 * 0.02 / (3 * 2) = 0.01
    by_seed = one_way_anova([[0.1, 0.2, 0.3]] * 3)
    assert (by_seed.ms_between, by_seed.sd_split, by_seed.share_split) == (0.0, 0.0, 0.0)
    assert by_seed.sd_initialisation == pytest.approx(0.1)
    with pytest.raises(LeukoError, match="shape"):
        one_way_anova([[0.8], [0.9]])


def test_variance_components_needs_two_splits_of_two_seeds():
    assert variance_components(table_of([(42, 1, "test", 0.8), (42, 2, "test", 0.9)])) == {}
    one_seed = table_of([(1, 1, "test", 0.8), (2, 1, "test", 0.9)])
    assert variance_components(one_seed) == {"test": {}}
    mixed = table_of([(1, 1, "test", 0.8), (1, 2, "test", 0.9), (2, 1, "test", 0.85), (2, 2, "test", 0.8),
                      (1, 1, "ext", 0.5), (1, 2, "ext", 0.6)])
    result = variance_components(mixed)
    assert result["ext"] == {} and set(result["test"]) == set(METRICS)


def test_variance_components_rejects_unbalanced_design():
    table = table_of([(1, 1, "test", 0.8), (1, 2, "test", 0.9), (2, 1, "test", 0.85)])
    with pytest.raises(LeukoError, match="dataset 'test' has unequal numbers of seeds"):
        variance_components(table)
    with pytest.raises(LeukoError, match="missing column"):
        variance_components(table.drop(columns="split_seed"))


# ---------------------------------------------------------------- agreement / disagreement

PATHS = ["p1", "p2", "p3", "p4", "p5"]
LABELS = ["a", "b", "c", "b", "c"]
RUN_PREDS = {"s1": ["a", "c", "a", "c", "c"],
             "s2": ["a", "c", "b", "b", "c"],
             "s3": ["a", "c", "a", "a", "b"]}


def three_runs(shuffle: bool = True) -> dict[str, pd.DataFrame]:
    """The three runs above; rows in a different order per run when `shuffle`."""
    runs = {}
    for k, (run, preds) in enumerate(RUN_PREDS.items()):
        t = pred_table(PATHS, LABELS, preds)
        runs[run] = t.sample(frac=1, random_state=k).reset_index(drop=True) if shuffle else t
    return runs


def test_agreement_hand_worked():
    table = agreement(three_runs())
    assert table["path"].tolist() == PATHS
    assert table["label"].tolist() == LABELS
    assert (table["n_runs"] == 3).all()
    assert table["n_correct"].tolist() == [3, 0, 0, 1, 2]
    assert table["n_predicted_classes"].tolist() == [1, 1, 2, 3, 2]
    # p4: c, b, a once each -> alphabetical tie-break picks a
    assert table["majority"].tolist() == ["a", "c", "a", "a", "c"]
    assert table["status"].tolist() == ["always right", "always wrong", "unstable", "unstable", "unstable"]
    assert table["always_wrong"].tolist() == [False, True, True, False, False]
    assert table["unstable"].tolist() == [False, False, True, True, True]
    assert table.loc[3, "predictions"] == "s1=c; s2=b; s3=a"


def test_agreement_single_run():
    table = agreement({"seed 1": pred_table(["x", "y"], ["a", "b"], ["a", "a"])})
    assert table["status"].tolist() == ["always right", "always wrong"]
    assert table["predictions"].tolist() == ["seed 1=a", "seed 1=a"]


def test_disagreement_hand_worked_and_against_loops():
    runs = three_runs()
    table = disagreement(runs)
    assert list(table.columns) == DISAGREEMENT_COLUMNS
    assert list(zip(table["run_a"], table["run_b"])) == [("s1", "s2"), ("s1", "s3"), ("s2", "s3")]
    # s1 vs s2: differ at p3 (a/b) and p4 (c/b); both wrong p2, p3; only s1 wrong p4
    first = table.iloc[0]
    assert (first["n"], first["disagree"], first["both_wrong"], first["only_a_wrong"], first["only_b_wrong"]) == \
        (5, 2, 2, 1, 0)
    assert first["rate"] == pytest.approx(0.4)
    for _, row in table.iterrows():
        a, b = RUN_PREDS[row["run_a"]], RUN_PREDS[row["run_b"]]
        differ = sum(x != y for x, y in zip(a, b))
        both = sum(x != y and z != y for x, z, y in zip(a, b, LABELS))
        only_a = sum(x != y and z == y for x, z, y in zip(a, b, LABELS))
        only_b = sum(x == y and z != y for x, z, y in zip(a, b, LABELS))
        assert (row["disagree"], row["both_wrong"], row["only_a_wrong"], row["only_b_wrong"]) == \
            (differ, both, only_a, only_b)
        assert row["rate"] == pytest.approx(differ / 5)


def test_disagreement_single_run_is_empty():
    table = disagreement({"seed 1": pred_table(["x"], ["a"], ["a"])})
    assert table.empty and list(table.columns) == DISAGREEMENT_COLUMNS


def _bad_runs(kind: str) -> dict[str, pd.DataFrame]:
    runs = three_runs(shuffle=False)
    t = runs["s2"]
    if kind == "missing path":
        runs["s2"] = t[t["path"] != "p3"]
    elif kind == "extra path":
        runs["s2"] = pd.concat([t, pred_table(["p9"], ["a"], ["a"])])
    elif kind == "label":
        runs["s2"] = t.assign(label=["a", "b", "c", "b", "a"])
    elif kind == "duplicate":
        runs["s2"] = pd.concat([t, t.iloc[:1]])
    elif kind == "column":
        runs["s2"] = t.drop(columns="prediction")
    elif kind == "empty table":
        runs["s2"] = t.iloc[:0]
    return runs


@pytest.mark.parametrize("func", [agreement, disagreement])
@pytest.mark.parametrize("kind, message", [
    ("missing path", "run 's2' lacks path 'p3'"),
    ("extra path", "run 's2' has path 'p9'"),
    ("label", "run 's2' labels path 'p5' differently"),
    ("duplicate", "run 's2' lists path 'p1' more than once"),
    ("column", r"run 's2': missing column\(s\) \['prediction'\]"),
    ("empty table", "run 's2': no rows"),
])
def test_agreement_and_disagreement_reject_mismatched_runs(func, kind, message):
    with pytest.raises(LeukoError, match=message):
        func(_bad_runs(kind))


@pytest.mark.parametrize("func", [agreement, disagreement])
def test_agreement_and_disagreement_reject_no_runs(func):
    with pytest.raises(LeukoError, match="preds is empty"):
        func({})


# ---------------------------------------------------------------- ensemble

def test_ensemble_hand_worked():
    paths, labels = ["x", "y", "z"], ["a", "b", "c"]
    r1 = pred_table(paths, labels, ["a", "b", "a"], probs=[[0.8, 0.2, 0.0], [0.2, 0.5, 0.3], [1.0, 0.0, 0.0]])
    r2 = pred_table(paths, labels, ["b", "a", "b"], probs=[[0.4, 0.6, 0.0], [0.6, 0.3, 0.1], [0.0, 1.0, 0.0]])
    out = ensemble({"s1": r1, "s2": r2.iloc[::-1]}, ABC)
    assert list(out.columns) == ["path", "label", "prediction", *prob_columns(ABC), "loss"]
    assert out["path"].tolist() == paths and out["label"].tolist() == labels
    # means: x [0.6, 0.4, 0]; y [0.4, 0.4, 0.2] (tie a/b -> a); z [0.5, 0.5, 0] (p true = 0)
    assert out[prob_columns(ABC)].to_numpy() == pytest.approx(np.array([[0.6, 0.4, 0], [0.4, 0.4, 0.2],
                                                                         [0.5, 0.5, 0]]))
    assert out["prediction"].tolist() == ["a", "a", "a"]
    assert out["loss"].tolist() == pytest.approx([-math.log(0.6), -math.log(0.4), -math.log(1e-15)])


def test_ensemble_tie_goes_to_first_class_in_class_order():
    classes = ["zeta", "alpha"]
    r = pred_table(["x"], ["alpha"], ["alpha"], classes, probs=[[0.5, 0.5]])
    assert ensemble({"s1": r}, classes)["prediction"].tolist() == ["zeta"]


def _random_run(seed: int, n: int = 12) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet([1, 1, 1], n)
    labels = [ABC[i] for i in rng.integers(0, 3, n)]
    preds = [ABC[i] for i in probs.argmax(axis=1)]
    return pred_table([f"img_{i:02d}" for i in range(n)], labels, preds, probs=probs.tolist())


def test_ensemble_of_identical_runs_equals_the_run():
    run = _random_run(5)
    out = ensemble({"s1": run, "s2": run.copy()}, ABC)
    pd.testing.assert_frame_equal(out, run, check_exact=True)
    assert compute_metrics(out, ABC, "test", 1, FAST) == compute_metrics(run, ABC, "test", 1, FAST)
    three = ensemble({"s1": run, "s2": run.copy(), "s3": run.sample(frac=1, random_state=0)}, ABC)
    pd.testing.assert_frame_equal(three, run, rtol=1e-12)
    m3, m1 = compute_metrics(three, ABC, "test", 1, FAST), compute_metrics(run, ABC, "test", 1, FAST)
    assert m3["confusion_matrix"] == m1["confusion_matrix"]
    assert m3["calibration"]["ece"] == pytest.approx(m1["calibration"]["ece"])
    assert m3["calibration"]["log_loss"] == pytest.approx(m1["calibration"]["log_loss"])


def test_ensemble_against_numpy_and_round_trip(tmp_path):
    runs = {f"s{k}": _random_run(k) for k in range(3)}
    for _k, r in runs.items():  # same images and labels as s0
        r[["path", "label"]] = runs["s0"][["path", "label"]].to_numpy()
    out = ensemble(runs, ABC)
    mean = sum(r[prob_columns(ABC)].to_numpy() for r in runs.values()) / 3
    assert out[prob_columns(ABC)].to_numpy() == pytest.approx(mean)
    assert out["prediction"].tolist() == [ABC[i] for i in mean.argmax(axis=1)]
    y = [ABC.index(c) for c in runs["s0"]["label"]]
    assert out["loss"].to_numpy() == pytest.approx(-np.log(mean[np.arange(12), y]))
    out.to_csv(tmp_path / "predictions.csv", index=False)
    back = read_predictions(tmp_path / "predictions.csv", ABC)
    assert back["prediction"].tolist() == out["prediction"].tolist()


def test_ensemble_rejects_bad_input():
    run = _random_run(1)
    with pytest.raises(LeukoError, match=r"run 's2': missing column\(s\) \['prob_c'\]"):
        ensemble({"s1": run, "s2": run.drop(columns="prob_c")}, ABC)
    with pytest.raises(LeukoError, match="run 's1'.*'label' has values not among the classes"):
        ensemble({"s1": run.assign(label="d")}, ABC)
    with pytest.raises(LeukoError, match="run 's1' column 'prob_a' has missing or non-numeric"):
        ensemble({"s1": run.assign(prob_a=np.nan)}, ABC)
    with pytest.raises(LeukoError, match="classes"):
        ensemble({"s1": run}, [])
    with pytest.raises(LeukoError, match="run 's2' lacks path"):
        ensemble({"s1": run, "s2": run.iloc[1:]}, ABC)
    with pytest.raises(LeukoError, match="preds is empty"):
        ensemble({}, ABC)


# ---------------------------------------------------------------- robustness_summary

def _experiment():
    """2 split seeds x 2 seeds on 'test' (random runs), 1 split x 2 seeds on 'ext'."""
    base = _random_run(100)
    runs = {}
    for k, (split, seed) in enumerate([(1, 1), (1, 2), (2, 1), (2, 2)]):
        r = _random_run(k)
        r[["path", "label"]] = base[["path", "label"]].to_numpy()
        runs[(split, seed)] = r
    metrics = [{**compute_metrics(r, ABC, "test", seed, FAST), "split_seed": split}
               for (split, seed), r in runs.items()]
    ext = {1: pred_table(["e1", "e2"], ["a", "a"], ["a", "b"]), 2: pred_table(["e1", "e2"], ["a", "a"], ["a", "a"])}
    metrics += [{**compute_metrics(r, ABC, "ext", seed, FAST), "split_seed": 1} for seed, r in ext.items()]
    preds = {"test": {f"split {s} · seed {t}": r for (s, t), r in runs.items()},
             "ext": {f"seed {t}": r for t, r in ext.items()}}
    return seed_table(metrics), preds


def test_robustness_summary_structure_and_values():
    table, preds = _experiment()
    agree = {d: agreement(p) for d, p in preds.items()}
    pairs = {d: disagreement(p) for d, p in preds.items()}
    ens = {d: compute_metrics(ensemble(p, ABC), ABC, d, 0, FAST) for d, p in preds.items()}
    out = robustness_summary(table, agree, pairs, ens, confidence=0.9)
    json.dumps(out, allow_nan=False)
    assert out["confidence_level"] == 0.9
    assert list(out["datasets"]) == ["test", "ext"]
    assert out["datasets"]["test"]["across_seeds"] == across_seeds(table, 0.9)["test"]
    assert out["variance_components"] == variance_components(table)
    assert set(out["variance_components"]["test"]) == set(METRICS) and out["variance_components"]["ext"] == {}

    test = out["datasets"]["test"]
    a = agree["test"]
    assert test["images"] == {"n": 12, "always_right": int((a["n_correct"] == 4).sum()),
                              "always_wrong": int((a["n_correct"] == 0).sum()),
                              "unstable": int((a["n_predicted_classes"] > 1).sum())}
    assert len(test["disagreement"]["pairs"]) == 6  # 4 runs -> 6 pairs
    rates = pairs["test"]["rate"].tolist()
    assert test["disagreement"]["mean_rate"] == pytest.approx(sum(rates) / 6)
    assert test["disagreement"]["max_rate"] == pytest.approx(max(rates))
    run_acc = [m["accuracy"] for m in table.to_dict("records") if m["dataset"] == "test"]
    e = test["ensemble"]
    assert e["rank"] == sum(x < ens["test"]["accuracy"] for x in run_acc) and e["n_runs"] == 4
    assert e["ece"] == ens["test"]["calibration"]["ece"]
    assert (e["n_correct"], e["n"]) == (ens["test"]["n_correct"], 12)

    ext = out["datasets"]["ext"]
    # e1 always right; e2 wrong in seed 1, right in seed 2 -> unstable
    assert ext["images"] == {"n": 2, "always_right": 1, "always_wrong": 0, "unstable": 1}
    assert ext["disagreement"]["pairs"] == [{"run_a": "seed 1", "run_b": "seed 2", "n": 2, "disagree": 1,
                                             "rate": 0.5, "both_wrong": 0, "only_a_wrong": 1, "only_b_wrong": 0}]
    # ensemble of ext: e2 mean p = (0.15 + 0.7) / 2 = 0.425 on a vs 0.425 on b -> tie -> a -> 2/2 correct
    assert ext["ensemble"]["accuracy"] == 1.0 and ext["ensemble"]["rank"] == 1
    assert "recall_b" not in ext["across_seeds"]


def test_robustness_summary_rank_by_hand_and_none_for_missing():
    table = table_of([(42, 1, "test", 0.8), (42, 2, "test", 0.9), (42, 3, "test", 0.95), (42, 4, "test", 0.85)])
    ens = {"test": {"accuracy": 0.9, "balanced_accuracy": 0.9, "macro_f1": 0.9, "calibration": {"ece": float("nan")},
                    "n_correct": 18, "n": 20}}
    single = {"seed 1": pred_table(["x"], ["a"], ["a"])}
    out = robustness_summary(table, {"test": agreement(single)}, {"test": disagreement(single)}, ens, 0.95)
    e = out["datasets"]["test"]["ensemble"]
    assert (e["rank"], e["n_runs"]) == (2, 4)  # 0.8 and 0.85 are strictly below 0.9
    assert e["ece"] is None
    assert out["datasets"]["test"]["disagreement"] == {"mean_rate": None, "max_rate": None, "pairs": []}
    assert out["variance_components"] == {}
    json.dumps(out, allow_nan=False)


def test_robustness_summary_rejects_mismatched_inputs():
    table, preds = _experiment()
    agree = {d: agreement(p) for d, p in preds.items()}
    pairs = {d: disagreement(p) for d, p in preds.items()}
    ens = {d: compute_metrics(ensemble(p, ABC), ABC, d, 0, FAST) for d, p in preds.items()}
    with pytest.raises(LeukoError, match=r"agreement_tables lacks dataset\(s\) \['ext'\]"):
        robustness_summary(table, {"test": agree["test"]}, pairs, ens, 0.95)
    with pytest.raises(LeukoError, match=r"disagreement_tables has dataset\(s\) \['other'\]"):
        robustness_summary(table, agree, {**pairs, "other": pairs["ext"]}, ens, 0.95)
    with pytest.raises(LeukoError, match=r"ensemble_metrics\['ext'\]: missing key\(s\) \['n_correct'\]"):
        bad = {k: v for k, v in ens["ext"].items() if k != "n_correct"}
        robustness_summary(table, agree, pairs, {**ens, "ext": bad}, 0.95)
    with pytest.raises(LeukoError, match=r"agreement_tables\['test'\]: missing column"):
        robustness_summary(table, {**agree, "test": agree["test"].drop(columns="unstable")}, pairs, ens, 0.95)
    with pytest.raises(LeukoError, match="confidence"):
        robustness_summary(table, agree, pairs, ens, 0)


def test_combinations_order_matches_key_order():
    # disagreement pairs follow dict order, not alphabetical order of the labels
    runs = {"z": pred_table(["x"], ["a"], ["a"]), "m": pred_table(["x"], ["a"], ["b"]),
            "a": pred_table(["x"], ["a"], ["c"])}
    table = disagreement(runs)
    assert list(zip(table["run_a"], table["run_b"])) == list(combinations(["z", "m", "a"], 2))


def test_robustness_files_on_two_splits(tmp_path, make_pred):
    """The workflow's entry point: per split seed agreement and ensemble, pooled spread, variance components."""
    from leukoreport.config.settings import Uncertainty
    from leukoreport.stats.metrics import compute_metrics
    from leukoreport.stats.robustness import robustness_files

    classes = ["a", "b", "c"]
    labels = ["a", "b", "c", "a", "b", "c"]
    right = {1: labels, 2: ["a", "b", "c", "a", "b", "a"]}  # seed 2 gets the last image wrong
    metrics, paths, ensembles = [], [], []
    for split in (7, 8):
        for seed in (1, 2):
            pred = make_pred(labels, right[seed], classes)
            pred["path"] = [f"s{split}/img_{i}.png" for i in range(len(labels))]
            path = tmp_path / f"{split}_{seed}.csv"
            pred.to_csv(path, index=False)
            metrics.append(compute_metrics(pred, classes, "test", seed, Uncertainty.defaults(n_resamples=199), split))
            paths.append(path)
        ensembles.append(compute_metrics(pred, classes, "test", None, Uncertainty.defaults(n_resamples=199), split))
    seeds, summary, agree, disagree = robustness_files(metrics, paths, ensembles, 0.95)
    assert list(zip(seeds["split_seed"], seeds["seed"])) == [(7, 1), (7, 2), (8, 1), (8, 2)]
    assert summary["split_seeds"] == [7, 8] and summary["seeds"] == [1, 2]
    acc = summary["across_seeds"]["test"]["accuracy"]
    assert acc["n_runs"] == 4 and acc["mean"] == pytest.approx((1 + 5 / 6) / 2)
    images = summary["by_split"]["7"]["datasets"]["test"]["images"]
    assert (images["n"], images["always_right"], images["unstable"]) == (6, 5, 1)
    assert set(agree["split_seed"]) == {7, 8} and list(agree.columns[:2]) == ["split_seed", "dataset"]
    assert agree.loc[agree["unstable"], "predictions"].tolist() == ["split 7 · seed 1=c; split 7 · seed 2=a",
                                                                    "split 8 · seed 1=c; split 8 · seed 2=a"]
    assert list(disagree["rate"]) == pytest.approx([1 / 6, 1 / 6])
    # identical splits: all variation is between seeds, none between splits
    assert summary["variance_components"]["test"]["accuracy"]["sd_split"] == 0.0
