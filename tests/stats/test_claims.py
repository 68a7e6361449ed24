"""Claim verdicts: each rule on synthetic runs, and each against a direct computation (numpy/scipy written out)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from leukoreport.config.claims import Claim, ClaimsFile, Paper
from leukoreport.stats.claim_rules import (
    balance_table,
    confusion_test,
    external_images_needed,
    metric_check,
    min_detectable_errors,
    overfitting_gap,
)
from leukoreport.stats.claims import (
    CLAIM_COLUMNS,
    VERDICTS,
    ClaimVerdict,
    Evidence,
    RunEvidence,
    judge_claims,
    verdict_rows,
)
from leukoreport.stats.deviations import recipe_deviations

CLASSES = ["basophil", "eosinophil", "lymphocyte", "monocyte", "neutrophil"]
Z = stats.norm.ppf(0.975)


# ---------------------------------------------------------------- synthetic runs

def metrics_from_matrix(matrix, dataset="test") -> dict:
    """The metrics.json keys the rules read, from a confusion matrix (rows true, columns predicted)."""
    m = np.asarray(matrix, dtype=int)
    per_class = {}
    for i, c in enumerate(CLASSES):
        support, predicted, tp = int(m[i].sum()), int(m[:, i].sum()), int(m[i, i])
        per_class[c] = {"support": support, "predicted": predicted, "correct": tp,
                        "precision": tp / predicted if predicted else 0.0,
                        "recall": tp / support if support else None,
                        "f1": 2 * tp / (support + predicted) if support + predicted else 0.0}
    n = int(m.sum())
    return {"dataset": dataset, "n": n, "accuracy": np.trace(m) / n, "classes": CLASSES,
            "classes_present": [c for c in CLASSES if per_class[c]["support"] > 0], "per_class": per_class,
            "calibration": {"ece": 0.02}, "confusion_matrix": {"labels": CLASSES, "matrix": m.tolist()}}


def matrix(per_class: int, errors: dict[tuple[int, int], int]) -> np.ndarray:
    m = np.diag([per_class] * 5)
    for (a, b), c in errors.items():
        m[a, a] -= c
        m[a, b] += c
    return m


def spread_errors(per_class: int, n_errors: int) -> np.ndarray:
    """n_errors spread round-robin over the 20 off-diagonal pairs."""
    pairs = [(a, b) for a in range(5) for b in range(5) if a != b]
    errors: dict[tuple[int, int], int] = {}
    for i in range(n_errors):
        errors[pairs[i % 20]] = errors.get(pairs[i % 20], 0) + 1
    return matrix(per_class, errors)


def history(gap: float) -> pd.DataFrame:
    return pd.DataFrame([{"phase": 1 + (e > 2), "epoch": e, "train_loss": 0.2 + 0.3 * (4 - e),
                          "valid_loss": 0.2 + gap + 0.3 * (4 - e)} for e in range(1, 5)])


def train(pretrained=True, best=4) -> dict:
    return {"pretrained": pretrained, "size": 224, "batch_size": 32, "schedule": "one_cycle", "device": "mps",
            "phases": [{"frozen": True, "lr": 1e-3, "max_epochs": 20, "patience": 3, "best_epoch": 2},
                       {"frozen": False, "lr": 1e-4, "max_epochs": 20, "patience": 5, "best_epoch": best}]}


def make_runs(matrices, gaps=None, external=None, pretrained=True) -> tuple[RunEvidence, ...]:
    out = []
    for i, m in enumerate(matrices):
        metrics = {"test": metrics_from_matrix(m)}
        for name, mats in (external or {}).items():
            metrics[name] = metrics_from_matrix(mats[i], name)
        out.append(RunEvidence(42, i + 1, train(pretrained), history((gaps or [0.02] * len(matrices))[i]), metrics))
    return tuple(out)


def evidence(runs, deviations=(), relations=None, auc=None, reproducibility=None) -> Evidence:
    return Evidence(runs=tuple(runs), relations=relations or {}, domain_auc=auc or {},
                    reproducibility=reproducibility, deviations=tuple(deviations), confidence=0.95)


def claims_file(*claims: Claim, recipe=None, software=None) -> ClaimsFile:
    return ClaimsFile("x.yaml", Paper("T", "C"), recipe or {}, software or {}, tuple(claims))


def claim(kind: str, cid: str = "c", **fields) -> Claim:
    return Claim(cid, kind, f"{kind} claim", "Section 1", fields)


def judge(c: Claim, ev: Evidence, **kw) -> ClaimVerdict:
    (verdict,) = judge_claims(claims_file(c, **kw), ev)
    assert verdict.verdict in VERDICTS
    assert (verdict.direction is not None) == (verdict.verdict == "not reproduced")
    assert (verdict.needs is not None) == (verdict.verdict == "inconclusive")
    return verdict


ACCURACY = {"dataset": "test", "metric": "accuracy"}


# ---------------------------------------------------------------- the metric rule, written out

def direct_interval(values, n, confidence=0.95):
    x = np.asarray(values, float)
    k, mean = len(x), x.mean()
    s = x.std(ddof=1)
    p = min(max(mean, 0.5 / n), 1 - 0.5 / n)
    q = stats.t.ppf(0.5 + confidence / 2, k - 1)
    half = q * math.sqrt(s ** 2 * (1 + 1 / k) + p * (1 - p) / n)
    return mean, half


def wilson_direct(c, n, z=Z):
    p = c / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0, centre - half), min(1, centre + half)


@pytest.mark.parametrize(("claimed", "values", "n", "tol"), [
    (0.9947, [0.90, 0.92, 0.91], 375, 0.0),
    (0.80, [0.95, 0.96, 0.94, 0.95], 375, 0.0),
    (0.912, [0.91, 0.912, 0.915, 0.913, 0.911, 0.909, 0.914, 0.912, 0.910, 0.913], 2000, 0.02),
    (0.95, [0.95, 0.90], 20, 0.0),
])
def test_metric_check_equals_direct_computation(claimed, values, n, tol):
    check = metric_check(claimed, values, n, tol)
    mean, half = direct_interval(values, n)
    assert check.mean == pytest.approx(mean) and check.half == pytest.approx(half)
    assert check.low == pytest.approx(max(0, mean - half)) and check.high == pytest.approx(min(1, mean + half))
    lo, hi = wilson_direct(round(claimed * n), n)
    target = max(tol, (hi - lo) / 2)
    assert check.target == pytest.approx(target)
    if claimed > mean + half + tol:
        expected = ("not reproduced", "overstated")
    elif claimed < mean - half - tol:
        expected = ("not reproduced", "understated")
    elif half <= target:
        expected = ("reproduced", None)
    else:
        expected = ("inconclusive", None)
    assert (check.verdict, check.direction) == expected


def test_needs_more_seeds_is_the_smallest_run_count_that_decides():
    values, n, tol = [0.91, 0.915, 0.905], 2000, 0.02
    check = metric_check(0.912, values, n, tol)
    assert check.verdict == "inconclusive"
    x = np.asarray(values)
    s, mean = x.std(ddof=1), x.mean()
    k_needed = next(k for k in range(4, 51)
                    if stats.t.ppf(0.975, k - 1) * math.sqrt(s * s * (1 + 1 / k) + mean * (1 - mean) / n) <= tol)
    assert check.needs == f"about {k_needed - 3} more seeds"


def test_needs_a_larger_test_set_when_seeds_cannot_decide():
    values, n = [0.95, 0.90], 20
    check = metric_check(0.95, values, n)
    x = np.asarray(values)
    s, mean = x.std(ddof=1), x.mean()
    lo, hi = wilson_direct(19, 20)
    target = (hi - lo) / 2
    assert all(stats.t.ppf(0.975, k - 1) * math.sqrt(s * s * (1 + 1 / k) + mean * (1 - mean) / n) > target
               for k in range(3, 51))
    t50 = stats.t.ppf(0.975, 49)
    images = math.ceil(mean * (1 - mean) / ((target / t50) ** 2 - s * s * (1 + 1 / 50)))
    assert check.verdict == "inconclusive"
    assert check.needs == f"a test set of at least {images:,} images and about 48 more seeds"


def test_one_run_is_inconclusive():
    check = metric_check(0.9, [0.9], 375)
    assert check.verdict == "inconclusive" and check.low is None and "one more seed" in check.needs


def test_binomial_term_keeps_its_width_at_one():
    check = metric_check(0.99, [1.0, 1.0, 1.0], 75)
    p = 1 - 0.5 / 75
    assert check.half == pytest.approx(stats.t.ppf(0.975, 2) * math.sqrt(p * (1 - p) / 75))
    assert check.verdict != "not reproduced"


# ---------------------------------------------------------------- verdicts through judge_claims

def test_false_accuracy_claim_is_not_reproduced_overstated():
    runs = make_runs([spread_errors(75, e) for e in (33, 30, 36)])  # 91.2%, 92.0%, 90.4%
    v = judge(claim("metric", value=0.9947, n=375, **ACCURACY), evidence(runs))
    assert (v.verdict, v.direction) == ("not reproduced", "overstated")
    mean, half = direct_interval([1 - e / 375 for e in (33, 30, 36)], 375)
    assert v.rerun_value == pytest.approx(mean) and v.low == pytest.approx(mean - half)
    assert v.rerun == f"{100 * mean:.1f}% [{100 * (mean - half):.1f}–{100 * (mean + half):.1f}], seeds 90.4–92.0"
    assert v.claimed == "99.47% on 375 images" and v.seed_min == pytest.approx(1 - 36 / 375)


def test_understated_claim_and_lower_is_better_metric():
    runs = make_runs([spread_errors(75, e) for e in (10, 12, 11)])
    v = judge(claim("metric", value=0.80, **ACCURACY), evidence(runs))
    assert (v.verdict, v.direction) == ("not reproduced", "understated")
    v = judge(claim("metric", dataset="test", metric="calibration.ece", value=0.2, n=375), evidence(runs))
    assert (v.verdict, v.direction) == ("not reproduced", "understated")  # claims a worse ECE than the rerun's 2%


def test_claim_that_holds_is_reproduced():
    errors = [176, 172, 180, 174, 178, 175, 177, 173, 179, 176]  # about 91.2% of 2000
    runs = make_runs([spread_errors(400, e) for e in errors])
    v = judge(claim("metric", value=0.912, n=2000, tolerance=0.02, **ACCURACY), evidence(runs))
    assert v.verdict == "reproduced" and v.n_seeds == 10


def test_two_seeds_and_a_tiny_test_split_are_inconclusive_with_what_is_needed():
    runs = make_runs([matrix(4, {(0, 1): 1}), matrix(4, {(0, 1): 1, (2, 3): 1})])  # 20 images
    v = judge(claim("metric", value=0.95, **ACCURACY), evidence(runs))
    assert v.verdict == "inconclusive" and v.direction is None
    assert "images" in v.needs and "more seeds" in v.needs
    v = judge(claim("balance", dataset="test"), evidence(runs))
    assert v.verdict == "inconclusive" and "images per class" in v.needs
    v = judge(claim("confusion", dataset="test"), evidence(runs))
    assert v.verdict == "inconclusive" and v.needs == "at least 5 errors in one class to detect a systematic pair"


def test_recipe_deviation_makes_metric_claims_not_comparable_but_not_the_others():
    runs = make_runs([spread_errors(75, e) for e in (33, 30, 36)], pretrained=False,
                     external={"ext": [matrix(0, {}) + np.diag([0, 0, 0, 9, 0])] * 3})
    recipe, software = {"pretrained": True, "size": 224}, {"torch": "2.9.1"}
    devs = recipe_deviations(recipe, software, [r.train for r in runs], {"size": 224}, {"torch": "2.0.0"}, "mps")
    cf = claims_file(claim("metric", "acc", value=0.9947, n=375, **ACCURACY),
                     claim("metric", "acc_size", value=0.9947, n=375, depends_on=["size"], **ACCURACY),
                     claim("metric", "acc_torch", value=0.9947, n=375, depends_on=["torch"], **ACCURACY),
                     claim("per_class", "table", dataset="test", classes={"basophil": {"recall": 1.0, "support": 75}}),
                     claim("errors", "err", dataset="test", count=2, n=375),
                     claim("confusion", "conf", dataset="test"), claim("overfitting", "over"),
                     claim("balance", "bal", dataset="test"), claim("reproducibility", "rep"),
                     claim("external", "ext", dataset="ext", correct=9, total=9, generalises_to="new data sources"),
                     claim("external", "ext_count", dataset="ext", correct=9, total=9),
                     recipe=recipe, software=software)
    out = {v.id: v for v in judge_claims(cf, evidence(runs, devs, relations={"ext": "provenance not declared"}))}
    item = "pretrained: declared true, rerun false (random initialisation)"
    for cid in ("acc", "table", "err", "ext_count"):
        assert out[cid].verdict == "not comparable" and item in out[cid].reason and out[cid].deviations == (item,)
        assert out[cid].direction is None and out[cid].needs is None
    assert out["acc"].rerun_value is not None  # the rerun's numbers are still given
    assert out["acc_size"].verdict == "not reproduced"  # depends only on size, which is the same
    assert out["acc_torch"].verdict == "not comparable"
    assert "torch: declared 2.9.1, rerun 2.0.0" in out["acc_torch"].reason
    for cid in ("conf", "over", "bal", "rep"):
        assert out[cid].verdict != "not comparable"
    assert out["ext"].verdict == "inconclusive"  # size and provenance decide, whatever the initialisation


def test_per_class_names_the_failing_cells():
    runs = make_runs([matrix(75, {(0, 4): 20, (2, 4): 1}), matrix(75, {(0, 4): 21}), matrix(75, {(0, 4): 19})])
    classes = {"basophil": {"recall": 0.9867, "precision": 1.0, "support": 75},
               "eosinophil": {"recall": 1.0, "support": 75}}
    v = judge(claim("per_class", dataset="test", classes=classes), evidence(runs))
    assert (v.verdict, v.direction) == ("not reproduced", "overstated")
    assert "basophil recall 98.67%" in v.reason and "eosinophil" not in v.reason
    direct = metric_check(0.9867, [55 / 75, 54 / 75, 56 / 75], 75)
    assert direct.verdict == "not reproduced"


def test_errors_rule_count_and_pattern():
    # rerun: about 2 errors of 375 per run, but in other pairs than claimed
    runs = make_runs([matrix(75, {(1, 3): 1, (3, 1): 1}), matrix(75, {(1, 3): 2}), matrix(75, {(3, 1): 1, (0, 4): 1})])
    pairs = [{"label": "basophil", "predicted": "neutrophil"}, {"label": "lymphocyte", "predicted": "neutrophil"}]
    v = judge(claim("errors", dataset="test", count=2, n=375, pairs=pairs, tolerance=0.02), evidence(runs))
    check = metric_check(2 / 375, [2 / 375] * 3, 375, 0.02, higher_is_better=False)
    assert check.verdict == "reproduced"
    share = 1 / 6  # one basophil -> neutrophil of six errors summed over runs
    assert (v.verdict, v.direction) == ("not reproduced", "overstated") and f"{100 * share:.0f}%" in v.reason
    assert "does not recur" in v.reason
    runs = make_runs([matrix(75, {(0, 4): 1, (2, 4): 1})] * 3)
    v = judge(claim("errors", dataset="test", count=2, n=375, pairs=pairs, tolerance=0.02), evidence(runs))
    assert v.verdict == "reproduced" and "100%" in v.rerun
    v = judge(claim("errors", dataset="test", count=2, n=375, pairs=pairs),
              evidence(make_runs([spread_errors(75, e) for e in (30, 33, 36)])))
    assert (v.verdict, v.direction) == ("not reproduced", "overstated") and "error rate" in v.reason


def test_confusion_test_equals_binomial_tests_with_holm():
    mats = [matrix(75, {(0, 4): 4, (0, 2): 1, (2, 4): 2}), matrix(75, {(0, 4): 5, (3, 1): 1}),
            matrix(75, {(0, 4): 3, (2, 4): 1})]
    table = confusion_test(mats, CLASSES)
    total = np.sum(mats, axis=0)
    p = []
    for a in range(5):
        e = total[a].sum() - total[a, a]
        for b in range(5):
            if a != b:
                p.append(stats.binomtest(int(total[a, b]), int(e), 0.25, alternative="greater").pvalue if e else 1.0)
    p = np.asarray(p)
    order = np.argsort(p, kind="stable")
    holm = np.minimum(1, np.maximum.accumulate((len(p) - np.arange(len(p))) * p[order]))
    expected = np.empty_like(p)
    expected[order] = holm
    assert table["p"].to_numpy() == pytest.approx(p) and table["p_holm"].to_numpy() == pytest.approx(expected)
    row = table[(table["true"] == "basophil") & (table["predicted"] == "neutrophil")].iloc[0]
    assert row["count"] == 12 and row["runs_with"] == 3 and bool(row["systematic"])
    assert table["systematic"].sum() == 1
    v = judge(claim("confusion", dataset="test"), evidence(make_runs(mats)))
    assert (v.verdict, v.direction) == ("not reproduced", "overstated") and "basophil → neutrophil" in v.reason


def test_confusion_reproduced_when_errors_spread_evenly():
    runs = make_runs([spread_errors(75, 40)] * 3)  # 2 per pair, 8 errors per class
    v = judge(claim("confusion", dataset="test"), evidence(runs))
    assert v.verdict == "reproduced"
    assert min_detectable_errors(5, 0.95) == next(e for e in range(1, 50) if 0.25 ** e < 0.05 / 20)


def test_systematic_pair_must_recur_in_half_the_runs():
    mats = [matrix(75, {(0, 4): 12}), matrix(75, {}), matrix(75, {})]
    table = confusion_test(mats, CLASSES)
    row = table[(table["true"] == "basophil") & (table["predicted"] == "neutrophil")].iloc[0]
    assert row["p_holm"] < 0.05 and not row["systematic"]


def test_overfitting_gap_at_restored_epoch_and_verdicts():
    h = history(0.05)
    assert overfitting_gap(h, train(best=3)) == pytest.approx(h.loc[2, "valid_loss"] - h.loc[2, "train_loss"])
    mats = [spread_errors(75, 10)] * 3
    assert judge(claim("overfitting"), evidence(make_runs(mats, gaps=[0.02, 0.05, 0.08]))).verdict == "reproduced"
    v = judge(claim("overfitting", tolerance=0.1), evidence(make_runs(mats, gaps=[0.2, 0.3, 0.4])))
    assert (v.verdict, v.direction) == ("not reproduced", "overstated")
    assert v.rerun_value == pytest.approx(0.3) and v.seed_min == pytest.approx(0.2)
    v = judge(claim("overfitting"), evidence(make_runs(mats, gaps=[0.02, 0.3, 0.05])))
    assert v.verdict == "inconclusive" and "more seeds" in v.needs


def newcombe_direct(k1, n1, k2, n2):
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_direct(k1, n1)
    l2, u2 = wilson_direct(k2, n2)
    return (p1 - p2 - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
            p1 - p2 + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2))


def test_balance_table_equals_newcombe_written_out():
    correct = {"a": 2 * 60, "b": 2 * 74, "c": 2 * 75}
    support = {"a": 150, "b": 150, "c": 150}
    table = balance_table(correct, support, runs_per_split=2, tolerance=0.05)
    row = table.set_index("class").loc["a"]
    low, high = newcombe_direct(60, 75, 149, 150)
    assert (row["low"], row["high"]) == (pytest.approx(low), pytest.approx(high))
    assert bool(row["weak"]) == (high < -0.05)


def test_balance_verdicts():
    weak = make_runs([matrix(75, {(0, 4): 20})] * 3)
    v = judge(claim("balance", dataset="test"), evidence(weak))
    assert (v.verdict, v.direction) == ("not reproduced", "overstated") and "basophil" in v.reason
    even = make_runs([spread_errors(400, 5)] * 3)
    assert judge(claim("balance", dataset="test"), evidence(even)).verdict == "reproduced"


def test_external_claim_size_provenance_and_domain_auc():
    ext = {"ext": [np.diag([0, 0, 0, 9, 0])] * 3}
    runs = make_runs([spread_errors(75, 10)] * 3, external=ext)
    c = claim("external", dataset="ext", correct=9, total=9, generalises_to="new data sources")
    v = judge(c, evidence(runs, relations={"ext": "provenance not declared"}, auc={"ext": (0.6, 0.35, 0.85)}))
    low = 9 / (9 + Z * Z)  # Wilson lower bound of 9/9
    assert v.verdict == "inconclusive" and f"as low as {100 * low:.1f}%" in v.reason
    assert "9 images of one class" in v.reason and "provenance is not declared" in v.reason
    assert "not told apart from the training images" in v.reason
    n_needed = next(n for n in range(2, 1000) if np.diff(wilson_direct(round(0.95 * n), n))[0] / 2 <= 0.05)
    assert external_images_needed() == n_needed
    assert v.needs == f"at least {n_needed} images from another laboratory, all classes"
    v = judge(c, evidence(runs, relations={"ext": "same source as training"}, auc={"ext": (0.99, 0.97, 1.0)}))
    assert v.verdict == "inconclusive" and "training source" in v.reason and "told apart" not in v.reason
    v = judge(c, evidence(runs, relations={"ext": "other source"}))
    assert v.verdict in ("reproduced", "inconclusive") and "70.1%" in v.reason
    v = judge(claim("external", dataset="missing", correct=9, total=9), evidence(runs))
    assert v.verdict == "not testable"


def test_reproducibility_and_untestable():
    runs = make_runs([spread_errors(75, 10)] * 2)
    c = claim("reproducibility")
    assert judge(c, evidence(runs)).verdict == "not testable"
    same = {"split_seed": 42, "seed": 1, "identical_predictions": True, "max_probability_difference": 0.0,
            "identical_weights": True, "n_tensors": 62, "n_tensors_different": 0, "max_weight_difference": 0.0}
    assert judge(c, evidence(runs, reproducibility=same)).verdict == "reproduced"
    differ = {**same, "identical_weights": False, "n_tensors_different": 3, "max_weight_difference": 1e-6}
    v = judge(c, evidence(runs, reproducibility=differ))
    assert (v.verdict, v.direction) == ("not reproduced", "overstated") and "3 of 62" in v.reason
    v = judge(claim("untestable", reason="Needs a prospective study."), evidence(runs))
    assert (v.verdict, v.reason) == ("not testable", "Needs a prospective study.")


def test_verdict_rows_have_the_csv_columns():
    runs = make_runs([spread_errors(75, 10)] * 2)
    rows = verdict_rows(judge_claims(claims_file(claim("metric", value=0.9, **ACCURACY)), evidence(runs)))
    assert list(rows[0]) == list(CLAIM_COLUMNS)
