"""Interventions at evaluation on shifted copies of unseen embedded images (scripts/shifted_sets.py) with a model
trained quickly on embedded images downsampled to 2 x the model's size (what rule intervention_images does; the
learner resizes anyway): each intervention moves its shifted copy back towards the unshifted copy, none moves the
unshifted copy beyond its interval; the plain rows are the run's predictions and shift values; the images prepared
once per set give the predictions that transforming in the run gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from leukoreport.base.errors import LeukoError
from leukoreport.config.settings import ShiftSettings
from leukoreport.data.colour_normalisation import fit_reference
from leukoreport.data.images import discover
from leukoreport.data.intervention_images import downsample, prepare_images
from leukoreport.data.split import stratified_split, subsample
from leukoreport.inference.evaluate import predict_with_features
from leukoreport.inference.interventions import (
    INTERVENTIONS,
    EvaluationOptions,
    OptionOutcome,
    apply_evaluation_options,
    check_plain,
    run_interventions,
)
from leukoreport.inference.model_files import load_model_file
from leukoreport.stats.intervals import wilson
from leukoreport.stats.validity import run_shift
from leukoreport.training.two_phase import PhaseConfig, TrainConfig, export_learner, train

ROOT = Path(__file__).resolve().parents[2]
SIDE = 128  # images downsampled (shorter side) before training and shifting: 2 x the model's size
PER_CLASS, UNSEEN = 60, 16  # training subsample per class; unseen images per class in each shifted copy
CFG = TrainConfig.defaults(size=64, batch_size=16, pretrained=False, device="cpu", num_workers=0, precision="fp32",
                           channels_last=False, phases=[PhaseConfig(True, 1e-2, 1, 5), PhaseConfig(False, 1e-3, 3, 5)])
SETTINGS = ShiftSettings.defaults(k=5, permutations=5)
# the interventions each shifted copy is predicted under (all of them on the unshifted copy)
RUNS = {"plain": INTERVENTIONS, "dye": ("plain", "reinhard", "macenko"), "scale": ("plain", "scale"),
        "bright": ("plain", "adabn")}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, shifted_sets):
    """Per shifted copy: (interventions.csv table, interventions.json dict), with the model and embeddings."""
    root = tmp_path_factory.mktemp("interventions")
    full = discover(ROOT / "data" / "leukocytes")
    split = _small(stratified_split(subsample(full, PER_CLASS, 0), (0.7, 0.15, 0.15), 42), root / "small")
    learn, _, _ = train(split, CFG, seed=1, threads=2)
    export_learner(learn, root / "model.pkl")
    learn = load_model_file(root / "model.pkl")
    used = {Path(p).name for p in split["path"]}
    unseen = pd.concat(g[~g["path"].map(lambda p: Path(p).name in used)].sort_values("path").head(UNSEEN)
                       for _, g in full.groupby("label"))
    train_rows = split[split["split"] == "train"]
    reference = fit_reference(list(train_rows["path"]), seed=0)
    train_emb = predict_with_features(learn, train_rows, 64)[1]
    test_emb = predict_with_features(learn, split[split["split"] == "test"], 64)[1]
    shifted = shifted_sets.shifted
    out = {"learn": learn, "reference": reference, "train": train_emb, "test": test_emb, "sets": {}}
    for kind, which in RUNS.items():
        rows = []
        for path, label in zip(unseen["path"], unseen["label"]):
            target = root / kind / label / (Path(path).stem + ".png")
            target.parent.mkdir(parents=True, exist_ok=True)
            with Image.open(path) as img:
                shifted(Image.fromarray(downsample(np.asarray(img.convert("RGB")), SIDE)), kind).save(target)
            rows.append({"path": str(target), "label": label})
        images = pd.DataFrame(rows)
        expected, data = predict_with_features(learn, images, 64)
        prepared = prepare_images(list(images["path"]), reference, root / f"{kind}-prepared", SIDE,
                                  progress=lambda line: None)
        table, summary = run_interventions(learn, images, expected, reference, train_emb, test_emb, SETTINGS, kind,
                                           progress=lambda line: None, which=which, prepared=prepared)
        out["sets"][kind] = (images, expected, data, table, summary)
        out.setdefault("prepared", {})[kind] = prepared
    print("accuracy by shifted copy and intervention:", _report(out))
    return out


def _small(split: pd.DataFrame, folder: Path) -> pd.DataFrame:
    """``split`` with every image downsampled to ``SIDE`` (PNG copies under ``folder``)."""
    paths = []
    for path, label in zip(split["path"], split["label"]):
        target = folder / label / (Path(path).stem + ".png")
        target.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(path) as img:
            Image.fromarray(downsample(np.asarray(img.convert("RGB")), SIDE)).save(target, compress_level=1)
        paths.append(str(target))
    return split.assign(path=paths)


def _accuracy(runs, kind: str, intervention: str) -> float:
    table = runs["sets"][kind][3]
    return float(table.loc[table["intervention"] == intervention, "correct"].mean())


def _report(runs) -> str:
    return "; ".join(f"{kind}: " + ", ".join(f"{i} {_accuracy(runs, kind, i):.3f}" for i in which)
                     for kind, which in RUNS.items())


def test_plain_rows_and_shift_values_are_the_runs(runs):
    images, expected, data, table, summary = runs["sets"]["plain"]
    plain = table[table["intervention"] == "plain"].reset_index(drop=True)
    assert list(plain["path"]) == list(expected["path"])
    assert list(plain["prediction"]) == list(expected["prediction"])
    assert plain["correct"].tolist() == (expected["label"] == expected["prediction"]).astype(int).tolist()
    probs = expected[[c for c in expected.columns if c.startswith("prob_")]].to_numpy()
    assert np.allclose(plain["p_prediction"], probs.max(axis=1))
    _, shift, _ = run_shift(runs["train"], runs["test"], data, expected, "plain", SETTINGS)
    entry = summary["interventions"]["plain"]
    assert entry["domain_auc"] == pytest.approx(shift["domain_classifier"]["auc"])
    assert entry["domain_auc_low"] == pytest.approx(shift["domain_classifier"]["low"])
    assert entry["median_ood_percentile"] == pytest.approx(shift["ood"]["median_percentile"])
    assert set(table["intervention"]) == set(INTERVENTIONS)
    assert (table.groupby("intervention").size() == len(images)).all()
    for name in INTERVENTIONS:
        got = summary["interventions"][name]
        assert got["applicable"] and got["n_images"] == len(images)
        assert got["seconds_per_image"] == pytest.approx(got["seconds"] / len(images), rel=1e-3)
    prepared = runs["prepared"]["plain"]
    for name, key in (("reinhard", "reinhard"), ("macenko", "macenko")):  # shared transform seconds, per set
        got = summary["interventions"][name]
        assert got["transform_shared"] and got["transform_seconds"] == pytest.approx(prepared.seconds[key], abs=1e-4)
        assert got["seconds"] == pytest.approx(got["transform_seconds"] + got["adapt_seconds"]
                                               + got["predict_seconds"], abs=1e-3)
    assert summary["interventions"]["plain"]["transform_seconds"] == 0


def test_no_image_intervention_moves_the_unshifted_copy_beyond_its_interval(runs):
    """Colour normalisation and scale matching keep the unshifted copy's accuracy within its Wilson interval. AdaBN
    may only raise it: this quickly trained model's BatchNorm statistics come from augmented training batches, and
    re-estimating them on unaugmented images raised its accuracy (0.36 to 0.50 on 100 unseen images, measured)."""
    n = len(runs["sets"]["plain"][0])
    plain = _accuracy(runs, "plain", "plain")
    low, high = wilson(round(plain * n), n)
    moved = {i: _accuracy(runs, "plain", i) for i in ("reinhard", "macenko", "scale")
             if not low <= _accuracy(runs, "plain", i) <= high}
    assert not moved, f"{moved} outside [{low:.3f}, {high:.3f}] ({_report(runs)})"
    lowered = {i: _accuracy(runs, "plain", i) for i in ("adabn", "combined") if _accuracy(runs, "plain", i) < low}
    assert not lowered, f"{lowered} below [{low:.3f}, {high:.3f}] ({_report(runs)})"
    assert runs["sets"]["plain"][4]["scale_factor"] == 1.0  # unshifted: not rescaled


def _predictions(runs, kind: str, intervention: str) -> np.ndarray:
    table = runs["sets"][kind][3]
    return table.loc[table["intervention"] == intervention, "prediction"].to_numpy()


@pytest.mark.parametrize("kind, intervention", [("dye", "reinhard"), ("dye", "macenko"), ("scale", "scale"),
                                                ("bright", "adabn")])
def test_the_intervention_brings_its_shifted_copy_back_to_the_unshifted(runs, kind, intervention):
    """Under the intervention, the shifted copy's accuracy is closer to the unshifted copy's (under the same
    intervention, which removes what the intervention does to any set) and more of its predictions agree with the
    unshifted copy's, image by image."""
    gap_with = abs(_accuracy(runs, kind, intervention) - _accuracy(runs, "plain", intervention))
    gap_without = abs(_accuracy(runs, kind, "plain") - _accuracy(runs, "plain", "plain"))
    assert gap_with < gap_without, _report(runs)
    agree_with = np.mean(_predictions(runs, kind, intervention) == _predictions(runs, "plain", intervention))
    agree_without = np.mean(_predictions(runs, kind, "plain") == _predictions(runs, "plain", "plain"))
    assert agree_with > agree_without, (agree_with, agree_without, _report(runs))


def test_colour_normalisation_makes_the_dye_copy_harder_to_tell_apart(runs):
    summary = runs["sets"]["dye"][4]["interventions"]
    assert summary["reinhard"]["domain_auc"] < summary["plain"]["domain_auc"], summary
    assert summary["macenko"]["domain_auc"] < summary["plain"]["domain_auc"], summary


def test_scale_matching_recovers_the_shrink(runs):
    assert runs["sets"]["scale"][4]["scale_factor"] == pytest.approx(1 / 0.6, rel=0.12)


def test_check_plain_refuses_other_predictions(runs):
    _, expected, _, _, _ = runs["sets"]["plain"]
    other = expected.copy()
    other.loc[0, "prediction"] = next(c for c in runs["learn"].dls.vocab if c != other.loc[0, "prediction"])
    with pytest.raises(LeukoError, match="predictions.csv: 1 plain predictions differ"):
        check_plain(expected, other, "predictions.csv")


def test_evaluation_options_leave_the_learner_as_it_came(runs):
    learn, images = runs["learn"], runs["sets"]["bright"][0].head(12)
    model = learn.model
    outcome = apply_evaluation_options(learn, images, EvaluationOptions("reinhard", 1.2, True), runs["reference"])
    assert learn.model is model
    assert list(outcome.predictions["path"]) == list(images["path"]) == outcome.embeddings.paths
    assert outcome.transform_seconds > 0 and outcome.adapt_seconds > 0 and outcome.prepared is None
    with pytest.raises(LeukoError, match="config key evaluation.tta: unknown"):
        EvaluationOptions.from_config({"tta": True})
    assert EvaluationOptions.from_config({"adabn": True, "stain_normalisation": "macenko"}) == \
        EvaluationOptions("macenko", 1.0, True)


def test_prepared_images_predict_as_transforming_in_the_run(runs):
    """Reading the images prepared once per set gives the probabilities that transforming them in the run gives
    (both at the same working size), for the scale-matched then Reinhard-normalised rescaled copy."""
    prepared = runs["prepared"]["scale"]
    images = runs["sets"]["scale"][0]
    options = EvaluationOptions("reinhard", prepared.match.factor, False)
    assert prepared.match.factor != 1.0
    shared = apply_evaluation_options(runs["learn"], images, options, runs["reference"], prepared=prepared)
    own = apply_evaluation_options(runs["learn"], images, options, runs["reference"])
    assert shared.prepared == "scale_reinhard" and own.prepared is None
    cols = [c for c in own.predictions.columns if c.startswith("prob_")]
    assert np.abs(shared.predictions[cols].to_numpy() - own.predictions[cols].to_numpy()).max() < 1e-5


def test_the_callers_own_plain_evaluation_is_used_not_predicted_again(runs):
    """The evaluate job passes its own evaluation as ``plain``: the rows and shift values are those of predicting the
    set here, and the seconds are the caller's."""
    images, expected, data, table, summary = runs["sets"]["dye"]
    own = OptionOutcome(expected, data, 0.0, 0.0, 1.25)
    got, got_summary = run_interventions(runs["learn"], images, None, runs["reference"], runs["train"], runs["test"],
                                         SETTINGS, "dye", progress=lambda line: None, which=("plain",), plain=own)
    recomputed = table[table["intervention"] == "plain"].reset_index(drop=True)
    assert got["path"].tolist() == recomputed["path"].tolist()
    assert got["prediction"].tolist() == recomputed["prediction"].tolist()
    assert np.allclose(got["p_prediction"], recomputed["p_prediction"], atol=1e-6)
    entry, before = got_summary["interventions"]["plain"], summary["interventions"]["plain"]
    assert entry["predict_seconds"] == 1.25 and entry["seconds_per_image"] == pytest.approx(1.25 / len(images))
    assert entry["domain_auc"] == pytest.approx(before["domain_auc"])
    assert entry["median_ood_percentile"] == pytest.approx(before["median_ood_percentile"])
