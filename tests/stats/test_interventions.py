"""Interventions over runs (leukoreport.stats.interventions) against independent computations: numpy loops for
the bootstrap, Holm by hand, sign flips by enumeration, verdicts and sentences from synthetic rows."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from leukoreport.base.errors import LeukoError
from leukoreport.stats.interventions import (
    LOWERS,
    NO_CHANGE,
    NOT_INFORMATIVE,
    RAISES,
    Settings,
    apply_holm,
    interventions_summary,
    path_key,
    read_run,
    set_sentence,
    sign_flip_p,
    verdict,
)
from leukoreport.stats.paired import sign_flip_test


def _entry(applicable=True, note="", spi=0.01, auc=0.9, ood=80.0) -> dict:
    return {"applicable": applicable, "note": note, "n_images": 0, "seconds": 1.0, "seconds_per_image": spi,
            "domain_auc": auc, "domain_auc_low": auc - 0.1, "domain_auc_high": min(1.0, auc + 0.1),
            "median_ood_percentile": ood}


def _write(root: Path, split: int, seed: int, dataset: str, labels: list[str], preds: dict[str, list[str]],
           entries: dict[str, dict]) -> tuple[Path, Path]:
    """A run's interventions.csv and interventions.json in C's format."""
    folder = root / "splits" / str(split) / "seeds" / str(seed) / dataset
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"intervention": name, "image": f"im{i:02d}.png", "label": t, "prediction": p, "correct": int(t == p),
             "p_prediction": 0.6} for name, ps in preds.items() for i, (t, p) in enumerate(zip(labels, ps))]
    pd.DataFrame(rows).to_csv(folder / "interventions.csv", index=False)
    (folder / "interventions.json").write_text(json.dumps({"dataset": dataset, "interventions": entries,
                                                           "scale_factor": 1.0}))
    return folder / "interventions.csv", folder / "interventions.json"


LABELS6 = ["a", "a", "a", "b", "b", "c"]
PLAIN = {1: ["b", "a", "b", "a", "b", "a"], 2: ["a", "b", "b", "b", "a", "a"]}
REINHARD = {1: ["a", "a", "a", "b", "a", "c"], 2: ["a", "a", "b", "b", "b", "a"]}


@pytest.fixture()
def tiny(tmp_path):
    """Two runs (seeds 1, 2) of one six-image set with plain and Reinhard predictions."""
    files = [_write(tmp_path, 42, s, "lab2", LABELS6, {"plain": PLAIN[s], "reinhard": REINHARD[s]},
                    {"plain": _entry(spi=0.010 * s, auc=0.9, ood=90.0),
                     "reinhard": _entry(spi=0.015 * s, auc=0.7, ood=60.0 + s)}) for s in (1, 2)]
    return [read_run(c, j) for c, j in files]


def _recall_mean(t: list[str], p: list[str]) -> float:
    """Balanced accuracy by loops: mean recall over the classes present in t."""
    recalls = []
    for c in sorted(set(t)):
        idx = [i for i, x in enumerate(t) if x == c]
        recalls.append(sum(p[i] == c for i in idx) / len(idx))
    return sum(recalls) / len(recalls)


def test_change_interval_equals_a_numpy_loop_over_resampled_images(tiny):
    settings = Settings(confidence=0.9, n_resamples=200, seed=7, min_images=1, max_width=1.0)
    table, _ = interventions_summary(tiny, settings)
    row = table.set_index("intervention").loc["reinhard"]
    # independent: the same resampled images for both seeds, statistic = mean over seeds of the difference
    rng = np.random.default_rng(7)
    idx = rng.integers(0, 6, size=(200, 6))
    acc, bal = [], []
    for b in range(200):
        take = idx[b]
        t = [LABELS6[i] for i in take]
        da = [np.mean([REINHARD[s][i] == LABELS6[i] for i in take]) - np.mean([PLAIN[s][i] == LABELS6[i] for i in take])
              for s in (1, 2)]
        db = [_recall_mean(t, [REINHARD[s][i] for i in take]) - _recall_mean(t, [PLAIN[s][i] for i in take])
              for s in (1, 2)]
        acc.append(sum(da) / 2)
        bal.append(sum(db) / 2)
    lo, hi = np.quantile(acc, [0.05, 0.95])
    assert row["accuracy_change_low"] == pytest.approx(lo) and row["accuracy_change_high"] == pytest.approx(hi)
    lo, hi = np.quantile(bal, [0.05, 0.95])
    assert row["balanced_accuracy_change_low"] == pytest.approx(lo)
    assert row["balanced_accuracy_change_high"] == pytest.approx(hi)
    # point values by hand: plain 2/6 and 2/6 correct, Reinhard 5/6 and 4/6
    assert row["accuracy"] == pytest.approx((5 / 6 + 4 / 6) / 2)
    assert row["accuracy_change"] == pytest.approx((5 / 6 + 4 / 6) / 2 - (2 / 6 + 2 / 6) / 2)
    expected_bal = np.mean([_recall_mean(LABELS6, REINHARD[s]) - _recall_mean(LABELS6, PLAIN[s]) for s in (1, 2)])
    assert row["balanced_accuracy_change"] == pytest.approx(expected_bal)
    # majority 'a' (3 of 6): gain = accuracy - 0.5; JSON numbers are means over the two runs
    assert row["majority_class"] == "a" and row["majority_accuracy"] == pytest.approx(0.5)
    assert row["gain"] == pytest.approx(row["accuracy"] - 0.5)
    assert row["domain_auc"] == pytest.approx(0.7) and row["median_ood_percentile"] == pytest.approx(61.5)
    assert row["seconds_per_image"] == pytest.approx((0.015 + 0.030) / 2)
    assert row["added_seconds_per_image"] == pytest.approx((0.005 + 0.010) / 2)


def test_p_value_is_the_sign_flip_test_of_per_image_mean_differences(tiny):
    table, _ = interventions_summary(tiny, Settings(n_resamples=199, min_images=1))
    d = [np.mean([(REINHARD[s][i] == LABELS6[i]) - (PLAIN[s][i] == LABELS6[i]) for s in (1, 2)]) for i in range(6)]
    nz = [x for x in d if x != 0]
    flips = [abs(sum(s * x for s, x in zip(signs, nz))) for signs in itertools.product([-1, 1], repeat=len(nz))]
    expected = sum(f >= abs(sum(nz)) - 1e-9 for f in flips) / len(flips)
    assert table.set_index("intervention").loc["reinhard", "p"] == pytest.approx(expected)


def test_sign_flip_draws_in_chunks_as_paired_does_on_the_non_zero_differences():
    rng = np.random.default_rng(3)
    d = rng.choice([-1.0, 0.0, 1.0], size=400, p=[0.3, 0.3, 0.4])
    assert sign_flip_p(d, 5000, seed=2) == sign_flip_test(d[d != 0], 5000, seed=2)
    assert sign_flip_p(np.zeros(10)) == 1.0
    assert sign_flip_p(np.ones(300)) == pytest.approx(1 / 20001)  # no flip reaches the all-positive mean


def test_holm_by_hand_and_family_leaves_out_small_and_not_applicable_rows():
    settings = Settings(min_images=20)

    def row(name, p, n=100, applicable=True, low=0.1, high=0.2):
        return {"dataset": "s", "intervention": name, "p": p, "p_holm": None, "n_images": n, "applicable": applicable,
                "note": "", "accuracy_change": (low + high) / 2, "accuracy_change_low": low,
                "accuracy_change_high": high}

    rows = [row("plain", None), row("reinhard", 0.01), row("scale", 0.04, low=-0.1, high=-0.01),
            row("adabn", 0.03, low=-0.05, high=0.1), row("macenko", 0.001, n=10), row("combined", 0.02,
                                                                                        applicable=False)]
    apply_holm(rows, settings)
    # family: reinhard 0.01, scale 0.04, adabn 0.03 -> 0.01*3 = 0.03, 0.03*2 = 0.06, max(0.04*1, 0.06) = 0.06
    got = {r["intervention"]: r["p_holm"] for r in rows}
    assert got["reinhard"] == pytest.approx(0.03) and got["adabn"] == pytest.approx(0.06)
    assert got["scale"] == pytest.approx(0.06)
    assert got["macenko"] is None and got["combined"] is None and got["plain"] is None
    verdicts = {r["intervention"]: r["verdict"] for r in rows}
    assert verdicts == {"plain": "reference", "reinhard": RAISES, "scale": NO_CHANGE, "adabn": NO_CHANGE,
                        "macenko": NOT_INFORMATIVE, "combined": NOT_INFORMATIVE}


@pytest.mark.parametrize(("p_holm", "low", "high", "n", "applicable", "expected"), [
    (0.001, 0.05, 0.2, 100, True, RAISES),
    (0.001, -0.2, -0.05, 100, True, LOWERS),
    (0.001, -0.01, 0.2, 100, True, NO_CHANGE),  # significant but the interval includes 0
    (0.2, 0.05, 0.2, 100, True, NO_CHANGE),  # the interval excludes 0 but Holm's p does not pass
    (0.001, 0.05, 0.2, 19, True, NOT_INFORMATIVE),  # fewer than 20 images
    (0.001, 0.05, 0.40, 100, True, NOT_INFORMATIVE),  # interval 35 pp wide
    (0.001, 0.05, 0.2, 100, False, NOT_INFORMATIVE),
])
def test_verdict_rule(p_holm, low, high, n, applicable, expected):
    row = {"p_holm": p_holm, "accuracy_change_low": low, "accuracy_change_high": high, "n_images": n,
           "applicable": applicable, "note": "model has no BatchNorm"}
    got, reason = verdict(row, Settings())
    assert got == expected
    if not applicable:
        assert reason == "not applicable: model has no BatchNorm"


def _srow(name, label, verdict_, change=0.0, low=0.0, high=0.0, reason="", n=340):
    return {"dataset": "tecom", "intervention": name, "label": label, "verdict": verdict_, "reason": reason,
            "n_images": n, "n_runs": 3, "accuracy": 0.06, "majority_accuracy": 0.3, "accuracy_change": change,
            "accuracy_change_low": low, "accuracy_change_high": high}


def test_sentence_from_synthetic_rows():
    rows = [_srow("plain", "plain evaluation", "reference"),
            _srow("adabn", "AdaBN", RAISES, 0.09, 0.04, 0.14),
            _srow("reinhard", "colour normalisation (Reinhard)", RAISES, 0.21, 0.15, 0.27),
            _srow("macenko", "stain normalisation (Macenko)", LOWERS, -0.03, -0.05, -0.01),
            _srow("scale", "scale matching", NO_CHANGE, 0.01, -0.02, 0.04),
            _srow("combined", "the combination of all three", NOT_INFORMATIVE, reason="not applicable: x")]
    assert set_sentence(rows) == (
        "On 'tecom' (340 images, 3 runs; plain accuracy 6.0%, majority baseline 30.0%): colour normalisation "
        "(Reinhard) raises accuracy by 21.0 pp [15.0 to 27.0]; AdaBN by 9.0 pp [4.0 to 14.0]; stain normalisation "
        "(Macenko) lowers accuracy by 3.0 pp [1.0 to 5.0]; scale matching: no change detected; the combination of "
        "all three: not informative (not applicable: x).")
    small = [_srow("plain", "plain", "reference", n=9)] + [
        _srow(k, k, NOT_INFORMATIVE, reason="9 images, fewer than 20", n=9) for k in ("reinhard", "adabn")]
    assert set_sentence(small).endswith(": no intervention is informative (9 images, fewer than 20).")


def test_summary_json_not_applicable_and_sentences(tmp_path):
    rng = np.random.default_rng(0)
    labels = list(rng.choice(["a", "b", "c"], size=60))
    files = []
    for seed in (1, 2, 3):
        plain = [x if rng.random() < 0.2 else "c" for x in labels]
        fixed = [x if rng.random() < 0.9 else "b" for x in labels]
        files.append(_write(tmp_path, 42, seed, "far", labels, {"plain": plain, "reinhard": fixed},
                            {"plain": _entry(), "reinhard": _entry(),
                             "adabn": _entry(applicable=False, note="the model has no BatchNorm layer")}))
    runs = [read_run(c, j) for c, j in files]
    table, summary = interventions_summary(runs, Settings(n_resamples=999))
    by = table.set_index("intervention")
    assert by.loc["reinhard", "verdict"] == RAISES and by.loc["reinhard", "p_holm"] == pytest.approx(1 / 20001)
    assert by.loc["adabn", "verdict"] == NOT_INFORMATIVE and not by.loc["adabn", "applicable"]
    assert by.loc[["adabn"], ["accuracy", "domain_auc", "seconds_per_image", "p"]].isna().all(axis=None)
    assert summary["n_comparisons"] == 1 and summary["alpha"] == 0.05
    assert "raises accuracy by" in summary["sentences"]["far"]
    assert "AdaBN: not informative (not applicable: the model has no BatchNorm layer)" in summary["sentences"]["far"]
    json.dumps(summary, allow_nan=False)  # strict JSON


def test_bad_files_give_one_line_errors_naming_the_file(tmp_path):
    c, j = _write(tmp_path, 42, 1, "s", LABELS6, {"plain": PLAIN[1]}, {"plain": _entry()})
    pd.read_csv(c).drop(columns="correct").to_csv(c, index=False)
    with pytest.raises(LeukoError, match=r"interventions\.csv: missing column\(s\) \['correct'\]"):
        read_run(c, j)
    c, j = _write(tmp_path, 42, 2, "s", LABELS6, {"plain": PLAIN[1]}, {"plain": {"applicable": True}})
    with pytest.raises(LeukoError, match=r"interventions\.json: interventions\.plain: missing key\(s\)"):
        read_run(c, j)
    c, j = _write(tmp_path, 42, 3, "s", LABELS6, {"plain": PLAIN[1], "scale": PLAIN[1][:5]},
                  {"plain": _entry(), "scale": _entry()})
    with pytest.raises(LeukoError, match="intervention 'scale' lists other images"):
        read_run(c, j)
    with pytest.raises(LeukoError, match="not a run's"):
        path_key("results/summary/interventions.csv")
    assert path_key("results/variants/v/splits/42/seeds/3/my set/interventions.json") == (42, 3, "my set")


@pytest.mark.parametrize("note", ["the model has no BatchNorm layer",
                                  "not applicable: the model has no BatchNorm layer"])
def test_reason_says_not_applicable_once(note):
    """The interventions job's note may already start with 'not applicable: ' (inference.interventions)."""
    row = {"p_holm": None, "accuracy_change_low": 0.0, "accuracy_change_high": 0.0, "n_images": 100,
           "applicable": False, "note": note}
    assert verdict(row, Settings()) == (NOT_INFORMATIVE, "not applicable: the model has no BatchNorm layer")
