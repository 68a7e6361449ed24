"""External validity on sets built from the embedded images: plain copies look like the training images,
stain-shifted copies do not (domain AUC, OOD scores, image statistics); validity.csv rows follow the files."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from skimage.color import hed2rgb, rgb2hed

from leukoreport.base.errors import LeukoError
from leukoreport.config.settings import ShiftSettings, Uncertainty
from leukoreport.data.image_stats import shift_table, statistics_table
from leukoreport.data.images import discover
from leukoreport.data.split import stratified_split, subsample
from leukoreport.inference.evaluate import predict_with_features
from leukoreport.inference.model_files import load_model_file
from leukoreport.report.sections.validity import baseline_cells, gain_text
from leukoreport.stats.baselines import add_baselines, baselines
from leukoreport.stats.metrics import compute_metrics
from leukoreport.stats.validity import LABEL_AUDIT_COLUMNS, label_audit_summary, run_shift, validity_table
from leukoreport.training.two_phase import PhaseConfig, TrainConfig, export_learner, train

ROOT = Path(__file__).resolve().parents[2]
CFG = TrainConfig.defaults(size=48, batch_size=16, pretrained=False, device="cpu",
                           phases=[PhaseConfig(True, 1e-2, 1, 1), PhaseConfig(False, 1e-3, 1, 1)], num_workers=0,
                           precision="fp32", channels_last=False)
PER_CLASS = 40


def stain_shift(src: Path, out: Path) -> None:
    """A copy of `src` with more haematoxylin and less eosin (another lab's staining)."""
    rgb = np.asarray(Image.open(src).convert("RGB"), dtype=np.float64) / 255.0
    hed = rgb2hed(rgb)
    hed[..., 0] *= 1.8
    hed[..., 1] *= 0.3
    Image.fromarray((np.clip(hed2rgb(hed), 0, 1) * 255).round().astype(np.uint8)).save(out)


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    """A model trained on embedded images, and embeddings of its training split, test split, plain copies of the
    test images and stain-shifted copies of them."""
    root = tmp_path_factory.mktemp("validity")
    split = stratified_split(subsample(discover(ROOT / "data" / "leukocytes"), PER_CLASS, 0), (0.7, 0.15, 0.15), 42)
    learn, _, _ = train(split, CFG, seed=1, threads=2)
    export_learner(learn, root / "model.pkl")
    learn = load_model_file(root / "model.pkl")
    test = split[split["split"] == "test"].reset_index(drop=True)
    copies, shifted = [], []
    for path, label in zip(test["path"], test["label"]):
        for kind, rows in (("copy", copies), ("stain", shifted)):
            out = root / kind / label / Path(path).name
            out.parent.mkdir(parents=True, exist_ok=True)
            if kind == "copy":
                shutil.copyfile(path, out)
            else:
                stain_shift(Path(path), out)
            rows.append({"path": str(out), "label": label})
    out = {}
    for name, images in (("train", split[split["split"] == "train"]), ("test", test),
                         ("copy", pd.DataFrame(copies)), ("stain", pd.DataFrame(shifted))):
        out[name] = predict_with_features(learn, images, 64)
    return split, out


def _shift(sets, name: str, **kw):
    split, emb = sets
    pred, data = emb[name]
    settings = ShiftSettings.defaults(k=5, **kw)
    return run_shift(emb["train"][1], emb["test"][1], data if name != "test" else emb["test"][1], pred, name,
                     settings)


def test_plain_copies_are_not_told_apart_and_stain_shift_is(sets):
    _, copy, _ = _shift(sets, "copy")
    _, stain, _ = _shift(sets, "stain")
    dc, ds = copy["domain_classifier"], stain["domain_classifier"]
    assert dc["low"] <= 0.5 <= dc["high"], dc
    assert ds["auc"] > 0.9 and ds["low"] > 0.5, ds
    assert dc["n_train"] == ds["n_train"] == int((sets[0]["split"] == "train").sum())


def test_stain_shifted_copies_have_higher_ood_scores(sets):
    copy, copy_summary, _ = _shift(sets, "copy")
    stain, stain_summary, _ = _shift(sets, "stain")
    assert list(copy["path"]) == list(sets[1]["copy"][0]["path"])
    assert stain["knn_distance"].median() > copy["knn_distance"].median()
    assert stain_summary["ood"]["median_percentile"] > copy_summary["ood"]["median_percentile"]
    assert stain_summary["ood"]["share_beyond_test"] > copy_summary["ood"]["share_beyond_test"]
    # plain copies of the test images score exactly like the test images (same pixels, same embeddings)
    test, _, _ = _shift(sets, "test")
    np.testing.assert_allclose(copy["knn_distance"], test["knn_distance"], rtol=1e-5)


def test_stain_shift_shows_in_the_image_statistics(sets):
    _, emb = sets
    train = statistics_table(list(emb["train"][0]["path"]))
    copy = shift_table(train, statistics_table(list(emb["copy"][0]["path"]))).set_index("statistic")
    stain = shift_table(train, statistics_table(list(emb["stain"][0]["path"]))).set_index("statistic")
    for stat in ("od_hematoxylin", "od_eosin"):
        assert stain.loc[stat, "wasserstein_sd"] > 1.0 > copy.loc[stat, "wasserstein_sd"]
        assert stain.loc[stat, "ks_p"] < 1e-3


def test_switches_leave_out_what_is_off(sets):
    table, summary, curve = _shift(sets, "copy", domain=False, ood=False)
    assert "domain_classifier" not in summary and "ood" not in summary
    assert list(table.columns) == ["path", "label", "prediction", "correct"] and curve.empty


def test_misaligned_embeddings_are_refused(sets):
    _, emb = sets
    pred, data = emb["copy"]
    with pytest.raises(LeukoError, match="embeddings and predictions.csv list different images"):
        run_shift(emb["train"][1], emb["test"][1], data, pred.iloc[::-1], "copy", ShiftSettings.defaults())


def test_validity_table_rows_come_from_metrics_and_shift(sets):
    split, emb = sets
    pred = emb["stain"][0]
    classes = sorted(split["label"].unique())
    metrics = compute_metrics(pred, classes, "stain", 1, Uncertainty.defaults(n_resamples=499), 42)
    add_baselines(metrics, pred, split.loc[split["split"] == "train", "label"], Uncertainty.defaults(n_resamples=499))
    _, summary, curve = _shift(sets, "stain")
    row = validity_table([metrics], [summary]).iloc[0]
    assert row["accuracy"] == (pred["label"] == pred["prediction"]).mean()
    counts = pred["label"].value_counts()
    assert row["majority_accuracy"] == counts.max() / len(pred)  # the hand count
    assert row["domain_auc"] == summary["domain_classifier"]["auc"]
    assert row["accuracy_at_80"] == pytest.approx(
        curve.loc[curve["coverage"] >= 0.8 - 1e-12, "accuracy"].iloc[0])
    empty = validity_table([metrics], [None]).iloc[0]
    assert pd.isna(empty["domain_auc"]) and empty["majority_accuracy"] == row["majority_accuracy"]


def test_a_gain_interval_of_zero_width_is_not_printed_as_a_point():
    # nine monocytes, all wrong: every resample gives -100 pp, so the bootstrap interval is the point [-1, -1]
    labels = ["monocyte"] * 9
    base = baselines(labels, ["lymphocyte"] * 9, labels, ["lymphocyte", "monocyte"], n_resamples=499)
    assert base["gain_low"] == base["gain_high"] == -1.0
    assert gain_text(base["gain"], base["gain_low"], base["gain_high"], 9) == \
        "\u2212100.0 pp (interval not informative, n = 9)"
    assert baseline_cells({**base, "n": 9})["gain"] == "\u2212100.0 pp (interval not informative, n = 9)"
    assert baseline_cells(base)["gain"] == "\u2212100.0 pp (interval not informative)"
    assert gain_text(0.1, -0.05, 0.25, 20) == "+10.0 pp [\u22125.0 to +25.0]"  # a real interval is unchanged


def test_label_audit_summary_carries_the_informativeness():
    gated = {"split_seed": 42, "dataset": "ext", "n": 9, "n_suspected": None, "share": None, "method": "m",
             "informative": False, "reason": "not informative: ..."}
    old = {"split_seed": 42, "dataset": "test", "n": 15, "n_suspected": 8, "share": 8 / 15, "method": "m"}
    table = label_audit_summary([gated, old])
    assert list(table.columns) == LABEL_AUDIT_COLUMNS
    assert table["informative"].tolist() == [False, None] and pd.isna(table["n_suspected"].iloc[0])
