"""Interventions at evaluation, per run and set, without labels: colour normalisation (Reinhard, Macenko), scale
matching, AdaBN and their combination; each set predicted through the same path as the evaluate job, with the
domain AUC and OOD percentile of the intervened images' embeddings (as the evaluate jobs compute them)."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from leukoreport.base.errors import LeukoError
from leukoreport.config.settings import ShiftSettings
from leukoreport.data.colour_normalisation import (
    STAIN_METHODS,
    NormalisationReference,
    fit_reinhard,
    normalise,
    read_image,
)
from leukoreport.data.embeddings import Embeddings
from leukoreport.data.intervention_images import PreparedImages, transform_key
from leukoreport.data.scale_matching import ScaleMatch, cell_share, match_scale, scale_factor
from leukoreport.inference.adabn import adabn_learner, has_batchnorm
from leukoreport.inference.evaluate import predict_with_features
from leukoreport.stats.interventions import INTERVENTIONS  # the interventions, in report order: one home
from leukoreport.stats.metrics import prob_columns
from leukoreport.stats.validity import run_shift

__all__ = ["ADAPTED", "COLUMNS", "COMBINED_STAIN", "INTERVENTIONS", "EvaluationOptions", "OptionOutcome",
           "apply_evaluation_options", "check_plain", "intervention_options", "intervention_rows",
           "run_interventions", "set_scale", "transform_images"]

COMBINED_STAIN = "reinhard"  # the colour normalisation of ``combined`` (scale matching, then Reinhard, then AdaBN)
# AdaBN changes the model, so its domain AUC and OOD percentile compare the adapted model's features of the set with
# the unadapted model's features of the training images: they measure how far the features moved, not the images
ADAPTED = "; domain AUC and OOD percentile: adapted features against the unadapted training features"
COLUMNS = ["intervention", "path", "label", "prediction", "correct", "p_prediction"]


@dataclass(frozen=True)
class EvaluationOptions:
    """What is done to a set before and while it is predicted: a stain normalisation (``none``, ``reinhard``,
    ``macenko``), a scale factor (1: none) and AdaBN."""

    stain_normalisation: str = "none"
    scale_factor: float = 1.0
    adabn: bool = False

    def __post_init__(self) -> None:
        if self.stain_normalisation not in ("none", *STAIN_METHODS):
            raise LeukoError(f"evaluation.stain_normalisation: unknown method {self.stain_normalisation!r} "
                             f"(expected none, {', '.join(STAIN_METHODS)})")

    @classmethod
    def from_config(cls, evaluation: dict | None) -> EvaluationOptions:
        """From a recipe's ``evaluation`` block (``adabn``, ``stain_normalisation``; absent keys are off)."""
        evaluation = evaluation or {}
        unknown = sorted(set(evaluation) - {"adabn", "stain_normalisation"})
        if unknown:
            raise LeukoError(f"config key evaluation.{unknown[0]}: unknown (expected adabn, stain_normalisation)")
        return cls(stain_normalisation=str(evaluation.get("stain_normalisation") or "none"),
                   adabn=bool(evaluation.get("adabn", False)))

    @property
    def transforms_images(self) -> bool:
        """Whether the images themselves are changed (not only the model)."""
        return self.stain_normalisation != "none" or self.scale_factor != 1.0


@dataclass
class OptionOutcome:
    """Predictions and embeddings of a set under ``EvaluationOptions`` (original paths) and what they cost."""

    predictions: pd.DataFrame
    embeddings: Embeddings
    transform_seconds: float
    adapt_seconds: float
    predict_seconds: float
    n_unnormalised: int = 0  # images Macenko could not normalise (predicted unchanged)
    prepared: str | None = None  # the PreparedImages transform read instead of transforming here

    @property
    def seconds(self) -> float:
        """Transform, AdaBN statistics pass and prediction together."""
        return self.transform_seconds + self.adapt_seconds + self.predict_seconds


def transform_images(paths: list[str], options: EvaluationOptions, reference: NormalisationReference | None,
                     folder: Path) -> tuple[list[str], int]:
    """Every image at ``paths`` rescaled by ``options.scale_factor`` then stain-normalised (Reinhard: from the set's
    mean LAB statistics, so that colour differences between its images stay; Macenko: per image), written
    losslessly (PNG) to ``folder``; returns the new paths and how many images Macenko left unchanged."""
    if options.stain_normalisation != "none" and reference is None:
        raise LeukoError("stain normalisation: no normalisation reference given")
    source = None
    if options.stain_normalisation == "reinhard":  # the set's own statistics (after rescaling), as the reference's
        source = fit_reinhard(match_scale(read_image(p), options.scale_factor) for p in paths)
    out, failed = [], 0
    for i, path in enumerate(paths):
        rgb = match_scale(read_image(path), options.scale_factor)
        if options.stain_normalisation != "none":
            normalised = normalise(rgb, options.stain_normalisation, reference, source)
            failed += normalised is None
            rgb = rgb if normalised is None else normalised
        target = folder / f"{i:06d}.png"
        Image.fromarray(rgb).save(target, compress_level=1)
        out.append(str(target))
    return out, failed


def apply_evaluation_options(learn, images: pd.DataFrame, options: EvaluationOptions,
                             reference: NormalisationReference | None, batch_size: int = 64, num_workers: int = 0,
                             tta: bool = False, seed: int = 0, progress: Callable[[str], None] = print,
                             workdir: str | Path | None = None,
                             prepared: PreparedImages | None = None) -> OptionOutcome:
    """``predict_with_features`` of ``images`` (path, label) under ``options``: the images of ``prepared`` (written
    once per split and set; no transform time here) when it has them, else transformed copies in a temporary
    folder; AdaBN on a copy of the model; rows and embeddings keep the original paths; ``learn`` is left as it
    came."""
    original = [str(p) for p in images["path"]]
    key = None if prepared is None or not options.transforms_images else transform_key(
        options.stain_normalisation, options.scale_factor != 1.0)
    if key is not None and options.scale_factor not in (1.0, prepared.match.factor):
        key = None  # prepared at another scale factor
    with tempfile.TemporaryDirectory(dir=workdir, prefix="intervention-") as tmp:
        start = time.perf_counter()
        if key is not None:
            paths, failed = prepared.paths(key, original), (prepared.n_unnormalised if key == "macenko" else 0)
        elif options.transforms_images:
            paths, failed = transform_images(original, options, reference, Path(tmp))
        else:
            paths, failed = original, 0
        transformed = time.perf_counter()
        table = images[["path", "label"]].reset_index(drop=True).assign(path=paths)
        if options.adabn:
            with adabn_learner(learn, [Path(p) for p in paths], batch_size,
                               num_workers if len(paths) > batch_size else 0) as adapted:
                adapted_at = time.perf_counter()
                pred, emb = predict_with_features(adapted, table, batch_size, num_workers, tta, seed, progress)
        else:
            adapted_at = transformed
            pred, emb = predict_with_features(learn, table, batch_size, num_workers, tta, seed, progress)
        done = time.perf_counter()
    pred["path"] = original
    emb = Embeddings(original, emb.labels, emb.features)
    return OptionOutcome(pred, emb, transformed - start, adapted_at - transformed, done - adapted_at, failed, key)


def set_scale(paths: list[str], reference: NormalisationReference, tolerance: float) -> tuple[ScaleMatch, float]:
    """The set's scale matching (cell shares of its images against the training median) and the seconds taken."""
    start = time.perf_counter()
    match = scale_factor(reference.cell_share, [cell_share(read_image(p)) for p in paths], tolerance)
    return match, time.perf_counter() - start


def intervention_options(name: str, match: ScaleMatch, reference: NormalisationReference,
                         batchnorm: bool) -> tuple[EvaluationOptions | None, str]:
    """The options of intervention ``name`` and a note; None when it is not applicable to this model or reference."""
    if name == "plain":
        return EvaluationOptions(), "as evaluated"
    if name == "reinhard":
        return (EvaluationOptions(stain_normalisation="reinhard"),
                "Reinhard: the set's mean LAB channel means and SDs mapped to the training images'")
    if name == "macenko":
        if reference.macenko is None:
            return None, reference.macenko_note or "no Macenko reference"
        return (EvaluationOptions(stain_normalisation="macenko"),
                "Macenko (torchstain, per image, light from its own background): training stain matrix, "
                "concentrations and background")
    if name == "scale":
        return EvaluationOptions(scale_factor=match.factor), match.note
    if name == "adabn":
        if not batchnorm:
            return None, "not applicable: the model has no BatchNorm layer"
        return EvaluationOptions(adabn=True), f"BatchNorm statistics re-estimated on the set, one pass{ADAPTED}"
    if name == "combined":
        note = f"scale matching ({match.note}), then {COMBINED_STAIN.capitalize()}, then AdaBN"
        note += ADAPTED if batchnorm else " (AdaBN skipped: the model has no BatchNorm layer)"
        return EvaluationOptions(COMBINED_STAIN, match.factor, batchnorm), note
    raise LeukoError(f"intervention {name!r}: unknown (expected {', '.join(INTERVENTIONS)})")


def intervention_rows(name: str, pred: pd.DataFrame) -> pd.DataFrame:
    """interventions.csv rows of one intervention: path, label, prediction, correct (0/1), p_prediction."""
    classes = [c.removeprefix("prob_") for c in pred.columns if c.startswith("prob_")]
    probs = pred[prob_columns(classes)].to_numpy(dtype=np.float64)
    index = {c: i for i, c in enumerate(classes)}
    p_pred = probs[np.arange(len(pred)), [index[str(p)] for p in pred["prediction"]]]
    correct = (pred["label"].astype(str) == pred["prediction"].astype(str)).astype(int)
    return pd.DataFrame({"intervention": name, "path": pred["path"].astype(str), "label": pred["label"].astype(str),
                         "prediction": pred["prediction"].astype(str), "correct": correct, "p_prediction": p_pred})


def check_plain(pred: pd.DataFrame, expected: pd.DataFrame, where: str, atol: float = 1e-4) -> None:
    """LeukoError naming ``where`` unless the recomputed plain predictions are the run's predictions.csv (same
    images, predictions, and probabilities within ``atol``)."""
    if list(pred["path"].astype(str)) != list(expected["path"].astype(str)):
        raise LeukoError(f"{where}: the images differ from the set's image list")
    if list(pred["prediction"].astype(str)) != list(expected["prediction"].astype(str)):
        n = int((pred["prediction"].astype(str) != expected["prediction"].astype(str)).sum())
        raise LeukoError(f"{where}: {n} plain predictions differ from the ones recomputed (another model or TTA?)")
    cols = [c for c in expected.columns if c.startswith("prob_")]
    gap = float(np.max(np.abs(pred[cols].to_numpy(float) - expected[cols].to_numpy(float)))) if cols else 0.0
    if gap > atol:
        raise LeukoError(f"{where}: plain probabilities differ from the ones recomputed by up to {gap:.2g}")


def _shift_values(train: Embeddings, test: Embeddings, settings: ShiftSettings, name: str,
                  outcome: OptionOutcome) -> dict:
    """Domain AUC (with interval) and median OOD percentile of the intervened images, as evaluate computes them."""
    _, summary, _ = run_shift(train, test, outcome.embeddings, outcome.predictions, name, settings)
    dom = summary.get("domain_classifier") or {}
    ood = summary.get("ood") or {}
    return {"domain_auc": dom.get("auc"), "domain_auc_low": dom.get("low"), "domain_auc_high": dom.get("high"),
            "median_ood_percentile": ood.get("median_percentile")}


def run_interventions(learn, images: pd.DataFrame, expected: pd.DataFrame | None, reference: NormalisationReference,
                      train: Embeddings, test: Embeddings, settings: ShiftSettings, name: str, batch_size: int = 64,
                      num_workers: int = 0, tta: bool = False, seed: int = 0, scale_tolerance: float = 0.1,
                      progress: Callable[[str], None] = print, workdir: str | Path | None = None,
                      which: tuple[str, ...] = INTERVENTIONS, where: str = "predictions.csv",
                      prepared: PreparedImages | None = None,
                      plain: OptionOutcome | None = None) -> tuple[pd.DataFrame, dict]:
    """interventions.csv rows and the interventions.json dict of one run on the set ``name``; ``expected`` is the
    run's predictions.csv, which the plain rows must equal (``where`` names it in the error). ``plain``: the set as
    the caller has just evaluated it with the model alone (the evaluate job), used instead of predicting it again.
    With ``prepared`` (the set's transformed images) only the AdaBN pass and the predictions run here; the transform
    seconds recorded are the prepared ones, shared by every run of the split."""
    images = images[["path", "label"]].reset_index(drop=True)
    paths = [str(p) for p in images["path"]]
    if prepared is None:
        match, scale_seconds = set_scale(paths, reference, scale_tolerance)
    else:
        match, scale_seconds = prepared.match, prepared.scale_seconds
    batchnorm = has_batchnorm(learn.model)
    rows, summary = [], {}
    for intervention in which:
        options, note = intervention_options(intervention, match, reference, batchnorm)
        entry = {"applicable": options is not None, "note": note, "n_images": 0, "seconds": None,
                 "seconds_per_image": None, "domain_auc": None, "domain_auc_low": None, "domain_auc_high": None,
                 "median_ood_percentile": None}
        if options is not None:
            progress(f"{name}: {intervention} ({note})")
            if intervention == "plain" and plain is not None:
                outcome = plain
            else:
                outcome = apply_evaluation_options(learn, images, options, reference, batch_size, num_workers, tta,
                                                   seed, progress, workdir, prepared)
            if intervention == "plain" and expected is not None:  # None: the variant evaluates otherwise
                check_plain(outcome.predictions, expected, where)
            transform, shared = _transform_seconds(options, outcome, prepared, scale_seconds, intervention)
            seconds = transform + outcome.adapt_seconds + outcome.predict_seconds
            n = len(images)
            entry.update(n_images=n, seconds=round(seconds, 4), seconds_per_image=round(seconds / n, 6),
                         transform_seconds=round(transform, 4), transform_shared=shared,
                         transform_seconds_per_image=round(transform / n, 6),
                         adapt_seconds=round(outcome.adapt_seconds, 4),
                         predict_seconds=round(outcome.predict_seconds, 4),
                         run_seconds_per_image=round((outcome.adapt_seconds + outcome.predict_seconds) / n, 6),
                         **_shift_values(train, test, settings, name, outcome))
            if options.stain_normalisation == "macenko":
                entry["n_unnormalised"] = outcome.n_unnormalised
            rows.append(intervention_rows(intervention, outcome.predictions))
        summary[intervention] = entry
    table = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=COLUMNS)
    result = {"dataset": name, "n_images": len(images), "interventions": summary, "scale_factor": match.factor,
              "scale": match.to_dict() | {"tolerance": scale_tolerance},
              "combined": f"scale matching, then {COMBINED_STAIN}, then AdaBN", "tta": bool(tta),
              "reference_images": reference.n_images,
              "seconds": "seconds = transform (images changed; with transform_shared true it was done once per split "
                         "and set by rule intervention_images and is shared by every run and seed) + adapt (AdaBN "
                         "statistics pass) + predict (per run); seconds_per_image divides by n_images",
              "work_side": None if prepared is None else prepared.work_side}
    return table, result


def _transform_seconds(options: EvaluationOptions, outcome: OptionOutcome, prepared: PreparedImages | None,
                       scale_seconds: float, intervention: str) -> tuple[float, bool]:
    """The seconds spent changing the set's images for one intervention and whether they were shared (prepared
    once per split and set) rather than spent in this run."""
    if not options.transforms_images:
        return (scale_seconds if intervention == "scale" else 0.0), prepared is not None and intervention == "scale"
    if outcome.prepared is not None and prepared is not None:
        return prepared.seconds[outcome.prepared], True
    extra = scale_seconds if options.scale_factor != 1.0 else 0.0
    return outcome.transform_seconds + extra, False
