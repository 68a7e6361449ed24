"""Suspected label errors: planted confident flips are flagged, clean rows are not; small, partial, one-class sets;
not informative (no count) where the seed ensemble does not beat the majority baseline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from leukoreport.base.errors import LeukoError
from leukoreport.report.figures.label_audit import plot_suspects
from leukoreport.report.render import make_environment
from leukoreport.report.sections.validity import validity_section
from leukoreport.stats.baselines import baselines
from leukoreport.stats.label_audit import INFORMATIVE_RULE, audit_informative, audit_summary, find_suspects
from leukoreport.stats.run_tables import RunKey
from leukoreport.stats.validity import label_audit_summary, validity_table

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


# ---------------------------------------------------------------- informative only where the model beats majority

def ensemble_metrics(pred: pd.DataFrame, name: str = "ext") -> dict:
    """A seed ensemble's metrics.json as far as the label audit and validity.csv read it."""
    acc = float((pred["label"] == pred["prediction"]).mean())
    return {"split_seed": 42, "seed": None, "dataset": name, "n": len(pred), "accuracy": acc,
            "confidence_level": 0.95, "intervals": {"accuracy": {"low": 0.0, "high": 1.0}},
            "baselines": baselines(pred["label"], pred["prediction"], pred["label"], CLASSES, n_resamples=999)}


def direct_gate(pred: pd.DataFrame) -> bool:
    """Independent rule: the 2.5% quantile of the paired bootstrap of (correct - majority correct) is above 0."""
    labels = pred["label"].to_numpy()
    values, counts = np.unique(labels, return_counts=True)
    majority = sorted(values[counts == counts.max()], key=CLASSES.index)[0]
    diff = (labels == pred["prediction"].to_numpy()).astype(float) - (labels == majority).astype(float)
    rng = np.random.default_rng(0)
    means = np.concatenate([diff[rng.integers(0, diff.size, size=(min(500, 999 - s), diff.size))].mean(axis=1)
                            for s in range(0, 999, 500)])
    return bool(np.quantile(means, 0.025) > 0)


def failing_set() -> pd.DataFrame:
    """300 images, 80% of them 'neutrophil'; the model answers confidently and at random."""
    rng = np.random.default_rng(3)
    given = np.where(rng.random(300) < 0.8, 4, rng.integers(0, 4, 300))
    return table(rng.integers(0, 5, 300), given, confidence=0.8)


def good_set() -> pd.DataFrame:
    """200 balanced images, 5 confident flips planted."""
    true = np.repeat(np.arange(5), 40)
    given = true.copy()
    given[[3, 50, 97, 130, 180]] = (true[[3, 50, 97, 130, 180]] + 1) % 5
    return table(true, given, confidence=0.9)


def test_a_model_that_does_not_beat_majority_makes_the_audit_not_informative():
    pred = failing_set()
    metrics = ensemble_metrics(pred)
    assert direct_gate(pred) is False
    informative, reason = audit_informative(metrics)
    assert informative is False
    acc, maj = metrics["accuracy"], metrics["baselines"]["majority_accuracy"]
    assert acc < maj
    assert reason == (f"not informative: the seed ensemble does not beat always answering 'neutrophil' (accuracy "
                      f"{100 * acc:.1f}% vs {100 * maj:.1f}%), so confident learning cannot separate label errors "
                      "from model errors")
    summary = audit_summary(find_suspects(pred, CLASSES), (informative, reason))
    assert summary["informative"] is False and summary["n_suspected"] is None and summary["share"] is None
    assert summary["per_class"] == {} and summary["rule"] == INFORMATIVE_RULE


def test_a_model_above_majority_whose_gain_interval_holds_zero_is_not_shown_to_beat_it():
    true = np.repeat(np.arange(5), 4)  # 20 balanced images, majority 20% (always 'basophil', images 0-3)
    pred_true = np.where((np.arange(20) >= 4) & (np.arange(20) < 10), true, (true + 1) % 5)  # 30% right
    pred = table(pred_true, true)
    metrics = ensemble_metrics(pred)
    gain = metrics["baselines"]
    assert metrics["accuracy"] > gain["majority_accuracy"] and gain["gain_low"] <= 0
    assert direct_gate(pred) is False
    informative, reason = audit_informative(metrics)
    assert informative is False and "is not shown to beat always answering 'basophil'" in reason


def test_a_good_model_keeps_the_audit_unchanged():
    pred = good_set()
    metrics = ensemble_metrics(pred)
    assert direct_gate(pred) is True
    informative, reason = audit_informative(metrics)
    assert informative is True and reason.startswith("the seed ensemble beats always answering 'basophil' (accuracy "
                                                     "97.5% vs 20.0%, gain +77.5 pp [")
    suspects = find_suspects(pred, CLASSES)
    gated = audit_summary(suspects, (informative, reason))
    plain = audit_summary(suspects)
    assert {k: gated[k] for k in plain} == plain and plain["n_suspected"] == 5


def test_metrics_without_baselines_are_refused():
    with pytest.raises(LeukoError, match="metrics.json lacks"):
        audit_informative({"accuracy": 0.5}, "ext/metrics.json")


def render_validity(results, pred: pd.DataFrame, metrics: dict, gate: tuple[bool, str]) -> str:
    """The report's external-validity section for one set 'ext' of split 42, one run, rendered to text."""
    folder = results / "splits" / "42" / "validity" / "ext"
    folder.mkdir(parents=True)
    suspects = find_suspects(pred, CLASSES).assign(informative=gate[0])
    suspects.to_csv(folder / "label_issues.csv", index=False)
    audit = {**audit_summary(suspects, gate), "dataset": "ext", "split_seed": 42, "seeds": [1]}
    (folder / "label_audit.json").write_text(__import__("json").dumps(audit))
    (results / "summary").mkdir()
    run = {**metrics, "seed": 1}
    validity_table([run], [None]).to_csv(results / "summary" / "validity.csv", index=False)
    assert label_audit_summary([audit])["informative"].tolist() == [gate[0]]
    ctx = validity_section(results, [RunKey(42, 1, "seed 1")], ["ext"], lambda p: "data:")
    env = make_environment(Path(__file__).resolve().parents[2] / "templates")
    html = env.get_template("partials/validity.html.j2").render(validity=ctx, shift=0, printed={"median": "seed 1"})
    return " ".join(html.split())


def test_the_rendered_report_gives_no_count_where_not_informative(tmp_path):
    pred = failing_set()
    metrics = ensemble_metrics(pred)
    gate = audit_informative(metrics)
    text = render_validity(tmp_path, pred, metrics, gate)
    assert "Suspected label errors: not informative (300 images)" in text
    assert "Not informative: the seed ensemble does not beat always answering &#39;neutrophil&#39; (accuracy" in text
    assert " of 300 (" not in text and "<th class=\"num\">rank</th>" not in text
    n_raw = int(find_suspects(pred, CLASSES)["suspected"].sum())
    assert n_raw > 0 and f"{n_raw} of 300" not in text


def test_the_rendered_report_counts_suspects_on_a_good_model(tmp_path):
    pred = good_set()
    metrics = ensemble_metrics(pred)
    text = render_validity(tmp_path, pred, metrics, audit_informative(metrics))
    assert "Suspected label errors: 5 of 200 (2.5%)" in text and "not informative" not in text


# ---------------------------------------------------------------- the ensemble job writes the audit (workflow script)

def test_the_ensemble_job_writes_the_audit_the_label_audit_job_wrote(tmp_path):
    import json
    import runpy
    from types import SimpleNamespace

    from leukoreport.base.atomic_io import write_csv
    from leukoreport.stats.metrics import read_predictions

    n, flips = 60, [3, 17, 41]
    true = np.arange(n) % len(CLASSES)
    given = true.copy()
    given[flips] = (true[flips] + 1) % len(CLASSES)
    paths = [str(tmp_path / f"img_{i:03d}.png") for i in range(n)]
    for path in paths:
        Image.new("RGB", (24, 24), (200, 100, 150)).save(path)
    seeds = [1, 2]
    for seed, confidence in zip(seeds, (0.9, 0.7)):
        write_csv(table(true, given, confidence, paths), tmp_path / f"seed{seed}.csv")
    split = pd.DataFrame({"path": paths, "label": [CLASSES[g] for g in given], "split": "train"})
    split.to_csv(tmp_path / "split.csv", index=False)
    out = tmp_path / "out"
    names = {"predictions": "predictions.csv", "metrics": "metrics.json", "timing": "timing.json",
             "label_table": "label_issues.csv", "label_summary": "label_audit.json", "label_gallery": "label_issues"}
    job = SimpleNamespace(
        input=SimpleNamespace(predictions=[str(tmp_path / f"seed{s}.csv") for s in seeds],
                              split=str(tmp_path / "split.csv")),
        output=SimpleNamespace(**{k: str(out / v) for k, v in names.items()}), log=[str(tmp_path / "ensemble.log")],
        wildcards=SimpleNamespace(split="42", dataset="ext"), threads=1,
        params=SimpleNamespace(seeds=seeds, label_audit={"filter_by": "prune_by_noise_rate", "gallery": 4},
                               uncertainty={"confidence_level": 0.95, "bootstrap_resamples": 199, "bootstrap_seed": 0,
                                            "calibration_bins": 5}))
    out.mkdir()
    runpy.run_path(str(Path(__file__).resolve().parents[2] / "workflow/scripts/ensemble.py"),
                   init_globals={"snakemake": job})
    ens = read_predictions(out / "predictions.csv", CLASSES)
    np.testing.assert_allclose(ens["prob_basophil"], (table(true, given, 0.9)["prob_basophil"]
                                                      + table(true, given, 0.7)["prob_basophil"]) / 2)
    metrics = json.loads((out / "metrics.json").read_text())
    gate = audit_informative(metrics, (out / "metrics.json").as_posix())
    expected = find_suspects(ens, CLASSES).assign(informative=gate[0])
    write_csv(expected, tmp_path / "expected.csv")
    assert (out / "label_issues.csv").read_text() == (tmp_path / "expected.csv").read_text()
    summary = json.loads((out / "label_audit.json").read_text())
    assert gate[0] and summary["n_suspected"] == len(flips) == audit_summary(expected, gate)["n_suspected"]
    assert summary["dataset"] == "ext" and summary["seeds"] == seeds and summary["split_seed"] == 42
    assert set(expected.loc[expected["suspected"], "path"]) == {paths[i] for i in flips}
    assert (out / "label_issues" / "page-01.png").is_file()
    timing = json.loads((out / "timing.json").read_text())
    assert timing["rule"] == "ensemble" and list(timing["diagnostics"]) == ["label_audit"]
    assert timing["diagnostics"]["label_audit"]["s"] > 0
