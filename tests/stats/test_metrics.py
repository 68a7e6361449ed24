"""Metrics against hand-computed values, JSON writing and predictions.csv checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from leukoreport.base.errors import LeukoError
from leukoreport.config.settings import Uncertainty
from leukoreport.stats.metrics import compute_metrics, misclassified, prob_columns, read_predictions

FIVE = ["basophil", "eosinophil", "lymphocyte", "monocyte", "neutrophil"]


def test_prob_columns():
    assert prob_columns(["a", "b"]) == ["prob_a", "prob_b"]


def test_three_classes_ten_items_by_hand(make_pred):
    classes = ["a", "b", "c"]
    labels = ["a", "a", "a", "a", "b", "b", "b", "c", "c", "c"]
    preds = ["a", "a", "a", "c", "b", "b", "a", "c", "c", "c"]
    losses = [0.1, 0.2, 0.3, 1.5, 0.1, 0.2, 2.0, 0.1, 0.1, 0.4]  # sum 5.0 -> mean 0.5
    m = compute_metrics(make_pred(labels, preds, classes, losses), classes, "test", 7)
    # rows = true, columns = predicted
    # a: 3 a, 0 b, 1 c ; b: 1 a, 2 b, 0 c ; c: 0 a, 0 b, 3 c
    assert m["confusion_matrix"] == {"labels": classes,
                                     "matrix": [[3, 0, 1], [1, 2, 0], [0, 0, 3]]}
    assert (m["dataset"], m["seed"], m["n"], m["n_correct"]) == ("test", 7, 10, 8)
    assert m["accuracy"] == pytest.approx(0.8)  # 8/10
    pc = m["per_class"]
    # predicted counts = column sums: a 4, b 2, c 4; support = row sums: 4, 3, 3
    assert [pc[c]["predicted"] for c in classes] == [4, 2, 4]
    assert [pc[c]["support"] for c in classes] == [4, 3, 3]
    # precision: a 3/4, b 2/2, c 3/4
    assert pc["a"]["precision"] == pytest.approx(0.75)
    assert pc["b"]["precision"] == pytest.approx(1.0)
    assert pc["c"]["precision"] == pytest.approx(0.75)
    # recall: a 3/4, b 2/3, c 3/3
    assert pc["a"]["recall"] == pytest.approx(0.75)
    assert pc["b"]["recall"] == pytest.approx(2 / 3)
    assert pc["c"]["recall"] == pytest.approx(1.0)
    # F1: a 0.75 ; b 2*1*(2/3)/(5/3) = 0.8 ; c 2*0.75*1/1.75 = 6/7
    assert pc["a"]["f1"] == pytest.approx(0.75)
    assert pc["b"]["f1"] == pytest.approx(0.8)
    assert pc["c"]["f1"] == pytest.approx(6 / 7)
    # balanced accuracy = (3/4 + 2/3 + 1)/3 = 29/36 ; macro F1 = (3/4 + 4/5 + 6/7)/3 = 337/420
    assert m["balanced_accuracy"] == pytest.approx(29 / 36)
    assert m["macro_f1"] == pytest.approx(337 / 420)
    assert m["mean_loss"] == pytest.approx(0.5)
    assert m["classes"] == classes and m["classes_present"] == classes
    assert all(pc[c]["present"] is True for c in classes)


def test_key_order_and_plain_types(make_pred):
    classes = ["a", "b", "c"]
    m = compute_metrics(make_pred(["a", "b", "c"], ["a", "c", "c"], classes), classes, "x", 1)
    assert list(m) == ["dataset", "seed", "split_seed", "n", "n_correct", "accuracy", "balanced_accuracy",
                       "macro_f1", "mean_loss", "confidence_level", "intervals", "calibration",
                       "confused_pairs", "classes", "classes_present", "per_class", "confusion_matrix"]
    assert list(m["per_class"]["a"]) == ["present", "support", "predicted", "correct", "errors", "precision",
                                         "recall", "recall_low", "recall_high", "error_rate", "error_rate_low",
                                         "error_rate_high", "f1"]
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "mean_loss"):
        assert type(m[key]) is float
    for key in ("seed", "n", "n_correct"):
        assert type(m[key]) is int
    for entry in m["per_class"].values():
        assert type(entry["present"]) is bool
        assert type(entry["support"]) is int and type(entry["predicted"]) is int
        assert type(entry["precision"]) is float
    assert all(type(v) is int for row in m["confusion_matrix"]["matrix"] for v in row)
    json.dumps(m, allow_nan=False)


def test_one_class_only_all_correct(make_pred):
    # 9 monocytes, all predicted monocyte
    m = compute_metrics(make_pred(["monocyte"] * 9, ["monocyte"] * 9, FIVE), FIVE, "ext", 42)
    assert (m["n"], m["n_correct"], m["accuracy"]) == (9, 9, 1.0)
    assert m["classes_present"] == ["monocyte"]
    assert m["balanced_accuracy"] == 1.0 and m["macro_f1"] == 1.0
    mono = m["per_class"]["monocyte"]
    assert mono.items() >= {"present": True, "support": 9, "predicted": 9, "correct": 9, "errors": 0,
                            "precision": 1.0, "recall": 1.0, "f1": 1.0, "error_rate": 0.0}.items()
    for c in FIVE:
        if c != "monocyte":
            assert m["per_class"][c] == {"present": False, "support": 0, "predicted": 0, "correct": 0, "errors": 0,
                                         "precision": None, "recall": None, "recall_low": None,
                                         "recall_high": None, "error_rate": None, "error_rate_low": None,
                                         "error_rate_high": None, "f1": None}
    assert m["confusion_matrix"]["matrix"][3] == [0, 0, 0, 9, 0]
    assert sum(map(sum, m["confusion_matrix"]["matrix"])) == 9


def test_absent_class_that_is_predicted_stays_null(make_pred):
    # 4 monocytes: 2 predicted monocyte, 2 predicted eosinophil (absent from the set)
    labels = ["monocyte"] * 4
    preds = ["monocyte", "eosinophil", "monocyte", "eosinophil"]
    m = compute_metrics(make_pred(labels, preds, FIVE), FIVE, "ext", 1)
    eos = m["per_class"]["eosinophil"]
    assert eos.items() >= {"present": False, "support": 0, "predicted": 2, "errors": 0,
                           "precision": None, "recall": None, "recall_low": None, "f1": None}.items()
    mono = m["per_class"]["monocyte"]
    # precision 2/2 = 1, recall 2/4 = 0.5, F1 = 2*1*0.5/1.5 = 2/3
    assert mono["precision"] == pytest.approx(1.0)
    assert mono["recall"] == pytest.approx(0.5)
    assert mono["f1"] == pytest.approx(2 / 3)
    # means over the one present class only
    assert m["accuracy"] == pytest.approx(0.5)
    assert m["balanced_accuracy"] == pytest.approx(0.5)
    assert m["macro_f1"] == pytest.approx(2 / 3)


def test_present_class_never_predicted_has_precision_zero(make_pred):
    classes = ["a", "b", "c"]
    labels = ["a", "a", "b", "b", "c"]
    preds = ["a", "a", "a", "a", "c"]
    m = compute_metrics(make_pred(labels, preds, classes), classes, "test", 0)
    b = m["per_class"]["b"]
    assert b.items() >= {"present": True, "support": 2, "predicted": 0, "errors": 2,
                         "precision": 0.0, "recall": 0.0, "f1": 0.0, "error_rate": 1.0}.items()
    # a: precision 2/4 = 0.5, recall 2/2 = 1, F1 = 2*0.5*1/1.5 = 2/3 ; c: all 1
    assert m["per_class"]["a"]["precision"] == pytest.approx(0.5)
    assert m["per_class"]["a"]["f1"] == pytest.approx(2 / 3)
    # accuracy 3/5 ; balanced (1 + 0 + 1)/3 = 2/3 ; macro F1 (2/3 + 0 + 1)/3 = 5/9
    assert m["accuracy"] == pytest.approx(0.6)
    assert m["balanced_accuracy"] == pytest.approx(2 / 3)
    assert m["macro_f1"] == pytest.approx(5 / 9)


def test_perfect_predictions(make_pred):
    labels = ["basophil", "eosinophil", "lymphocyte", "monocyte", "neutrophil"] * 3
    m = compute_metrics(make_pred(labels, labels, FIVE), FIVE, "test", 3)
    assert m["accuracy"] == 1.0 and m["balanced_accuracy"] == 1.0 and m["macro_f1"] == 1.0
    assert m["n_correct"] == m["n"] == 15
    assert m["classes_present"] == FIVE
    assert m["confusion_matrix"]["matrix"] == [[3 if i == j else 0 for j in range(5)]
                                               for i in range(5)]
    for c in FIVE:
        assert m["per_class"][c].items() >= {"present": True, "support": 3, "predicted": 3,
                                             "precision": 1.0, "recall": 1.0, "f1": 1.0}.items()


def test_compute_metrics_rejects_unknown_labels_and_empty(make_pred):
    with pytest.raises(LeukoError, match="label"):
        compute_metrics(make_pred(["zzz"], ["a"], ["a", "b"]), ["a", "b"], "test", 0)
    with pytest.raises(LeukoError, match="no rows"):
        compute_metrics(make_pred([], [], ["a", "b"]), ["a", "b"], "test", 0)


def test_read_predictions_ok(tmp_path: Path, make_pred):
    classes = ["a", "b"]
    path = tmp_path / "predictions.csv"
    make_pred(["a", "b"], ["a", "a"], classes).to_csv(path, index=False)
    pred = read_predictions(path, classes)
    assert list(pred["label"]) == ["a", "b"]
    assert pred["prob_a"].dtype == float


@pytest.mark.parametrize("drop", ["path", "label", "prediction", "prob_b", "loss"])
def test_read_predictions_missing_column(tmp_path: Path, drop: str, make_pred):
    path = tmp_path / "predictions.csv"
    make_pred(["a"], ["a"], ["a", "b"]).drop(columns=[drop]).to_csv(path, index=False)
    with pytest.raises(LeukoError, match=rf"predictions\.csv.*{drop}"):
        read_predictions(path, ["a", "b"])


@pytest.mark.parametrize("column", ["label", "prediction"])
def test_read_predictions_unknown_class(tmp_path: Path, column: str, make_pred):
    path = tmp_path / "predictions.csv"
    df = make_pred(["a", "b"], ["a", "b"], ["a", "b"])
    df.loc[1, column] = "platelet"
    df.to_csv(path, index=False)
    with pytest.raises(LeukoError, match=rf"predictions\.csv.*{column}.*platelet"):
        read_predictions(path, ["a", "b"])


def test_read_predictions_missing_file_and_bad_numbers(tmp_path: Path, make_pred):
    with pytest.raises(LeukoError, match="nope.csv"):
        read_predictions(tmp_path / "nope.csv", ["a"])
    path = tmp_path / "predictions.csv"
    df = make_pred(["a"], ["a"], ["a", "b"])
    df["loss"] = ["oops"]
    df.to_csv(path, index=False)
    with pytest.raises(LeukoError, match=r"predictions\.csv.*loss"):
        read_predictions(path, ["a", "b"])


def test_misclassified_most_confident_first():
    pred = pd.DataFrame({
        "path": ["p0", "p1", "p2", "p3"], "label": ["a", "a", "b", "b"], "prediction": ["a", "b", "a", "a"],
        "prob_a": [0.8, 0.4, 0.7, 0.9], "prob_b": [0.2, 0.6, 0.3, 0.1], "loss": [0.2, 0.9, 1.2, 2.3]})
    wrong = misclassified(pred)
    # p1: predicted b with 0.6; p2: predicted a with 0.7; p3: predicted a with 0.9 -> order p3, p2, p1
    assert list(wrong["path"]) == ["p3", "p2", "p1"]
    assert list(wrong["confidence"]) == [0.9, 0.7, 0.6]
    assert list(wrong["p_true"]) == [0.1, 0.3, 0.4]
    assert misclassified(pred[pred["label"] == pred["prediction"]]).empty


# --------------------------------------------------------------------------- intervals, calibration, confusions

def test_metrics_json_intervals_match_scipy_and_hand_values(make_pred):
    from scipy.stats import binomtest

    classes = ["a", "b", "c"]
    labels = ["a"] * 9 + ["b"] * 6 + ["c"] * 5
    preds = ["a"] * 9 + ["b"] * 4 + ["a", "c"] + ["c"] * 4 + ["b"]
    m = compute_metrics(make_pred(labels, preds, classes), classes, "test", 1, Uncertainty.defaults(n_resamples=999))
    assert m["confidence_level"] == 0.95
    assert m["n_correct"] == 17
    ci = binomtest(17, 20).proportion_ci(confidence_level=0.95, method="wilson")
    assert (m["intervals"]["accuracy"]["low"], m["intervals"]["accuracy"]["high"]) == pytest.approx((ci.low, ci.high))
    # class a: 9/9 right -> Wilson lower bound n / (n + z^2) = 9 / (9 + 1.95996^2) = 0.70085
    pc = m["per_class"]["a"]
    assert pc["recall_low"] == pytest.approx(9 / (9 + 1.959963984540054 ** 2)) and pc["recall_high"] == 1.0
    assert (pc["errors"], pc["error_rate"], pc["error_rate_low"]) == (0, 0.0, 0.0)
    b = m["per_class"]["b"]  # 4 of 6 right
    ci_b = binomtest(4, 6).proportion_ci(method="wilson")
    assert (b["recall_low"], b["recall_high"]) == pytest.approx((ci_b.low, ci_b.high))
    assert (b["error_rate_low"], b["error_rate_high"]) == pytest.approx((1 - ci_b.high, 1 - ci_b.low))
    for key in ("balanced_accuracy", "macro_f1"):
        iv = m["intervals"][key]
        assert iv["low"] <= m[key] <= iv["high"] and iv["n_resamples"] == 999 and not iv["degenerate"]
    json.dumps(m)  # plain JSON types only


def test_metrics_json_calibration_and_confused_pairs(make_pred):
    classes = ["a", "b", "c"]
    labels = ["a", "a", "a", "b", "b", "c", "c", "c"]
    preds = ["a", "b", "b", "b", "a", "c", "a", "c"]
    m = compute_metrics(make_pred(labels, preds, classes), classes, "ext", 2, Uncertainty.defaults(n_resamples=999))
    # every image has confidence 0.9 -> one bin (0.8667, 0.9333]; accuracy 4/8; ECE = |0.5 - 0.9| = 0.4
    cal = m["calibration"]
    assert cal["ece"] == pytest.approx(0.4) and cal["n_bins"] == 15
    assert [b["count"] for b in cal["bins"] if b["count"]] == [8]
    # Brier: right rows (0.1^2 + 2 * 0.05^2) = 0.015, wrong rows (0.9^2 + 0.95^2 + 0.05^2) = 1.715
    assert cal["brier"] == pytest.approx((4 * 0.015 + 4 * 1.715) / 8)
    assert cal["log_loss"] == pytest.approx(-(4 * np.log(0.9) + 4 * np.log(0.05)) / 8)
    # confusions: a->b twice, b->a once, c->a once
    pairs = [(p["true"], p["predicted"], p["count"]) for p in m["confused_pairs"]]
    assert pairs == [("a", "b", 2), ("b", "a", 1), ("c", "a", 1)]
    assert m["confused_pairs"][0]["share_of_true"] == pytest.approx(2 / 3)
    assert m["confused_pairs"][0]["share_of_errors"] == pytest.approx(2 / 4)


def test_all_correct_single_class_gives_wilson_and_no_bootstrap_interval(make_pred):
    """The paper's 9/9 external monocytes: 100.0% [70.1–100.0], bootstrap degenerate."""
    m = compute_metrics(make_pred(["monocyte"] * 9, ["monocyte"] * 9, FIVE), FIVE, "external_monocyte", 42,
                        Uncertainty.defaults(n_resamples=999))
    acc = m["intervals"]["accuracy"]
    assert f"{100 * acc['low']:.1f}–{100 * acc['high']:.1f}" == "70.1–100.0"
    assert m["intervals"]["balanced_accuracy"]["degenerate"] is True
    assert m["intervals"]["balanced_accuracy"]["low"] is None
    assert m["per_class"]["basophil"]["recall_low"] is None and m["confused_pairs"] == []


def test_prediction_classes_reads_the_prob_columns(tmp_path, make_pred):
    from leukoreport.stats.metrics import prediction_classes

    path = tmp_path / "predictions.csv"
    make_pred(["b", "a"], ["b", "b"], ["b", "a", "c"]).to_csv(path, index=False)
    assert prediction_classes(path) == ["b", "a", "c"]
    (tmp_path / "bad.csv").write_text("path,label\nx,y\n")
    with pytest.raises(LeukoError, match="bad.csv: no prob_<class> columns"):
        prediction_classes(tmp_path / "bad.csv")
    with pytest.raises(LeukoError, match="missing.csv: file not found"):
        prediction_classes(tmp_path / "missing.csv")
