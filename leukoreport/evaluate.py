"""Predictions of an exported learner on a labelled image list (test split or an external set)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from leukoreport.embeddings import Embeddings, pooled_features
from leukoreport.errors import LeukoError
from leukoreport.metrics import prob_columns

EPS = 1e-15


def load_model(path: str | Path, cpu: bool = True):
    """``fastai.vision.all.load_learner`` with a one-line error for a missing or unreadable file."""
    from fastai.learner import load_learner

    path = Path(path)
    if not path.is_file():
        raise LeukoError(f"{path}: model file not found")
    try:
        return load_learner(path, cpu=cpu)
    except Exception as exc:
        raise LeukoError(f"{path}: cannot load fastai learner ({type(exc).__name__}: {exc})") from exc


def predict(learn, images: pd.DataFrame, batch_size: int = 64, num_workers: int = 0, tta: bool = False,
            seed: int = 0) -> pd.DataFrame:
    """Rows of ``images`` (path, label) with prediction, one ``prob_<class>`` column per class, and loss.

    ``loss`` is the cross-entropy of the true class, ``-ln p(label)``; ``tta`` as in ``predict_with_features``.
    """
    return predict_with_features(learn, images, batch_size, num_workers, tta, seed)[0]


def predict_with_features(learn, images: pd.DataFrame, batch_size: int = 64, num_workers: int = 0,
                          tta: bool = False, seed: int = 0) -> tuple[pd.DataFrame, Embeddings]:
    """``predict`` and the pooled backbone features of every image, from the same single forward pass.

    With ``tta`` the probabilities come from fastai ``learn.tta`` seeded with ``seed`` (``predict.seeded_tta``);
    the features still come from the one plain forward pass.
    """
    classes = [str(c) for c in learn.dls.vocab]
    unknown = sorted(set(images["label"]) - set(classes))
    if unknown:
        raise LeukoError(f"label '{unknown[0]}': not a class of the model ({', '.join(classes)})")
    out = images[["path", "label"]].reset_index(drop=True).copy()
    if len(out) == 0:
        raise LeukoError("no images to evaluate")
    dl = learn.dls.test_dl([Path(p) for p in out["path"]], bs=batch_size, num_workers=num_workers)
    with learn.no_bar(), pooled_features(learn.model) as batches:
        probs, _ = learn.get_preds(dl=dl)
    features = np.concatenate(batches)
    if tta:
        from leukoreport.predict import seeded_tta

        with learn.no_bar():
            probs = seeded_tta(learn, dl, seed).detach().cpu()
    probs = probs.float().numpy().astype(np.float64)
    out["prediction"] = [classes[i] for i in probs.argmax(axis=1)]
    for col, values in zip(prob_columns(classes), probs.T):
        out[col] = values
    index = {c: i for i, c in enumerate(classes)}
    true_p = probs[np.arange(len(out)), [index[lab] for lab in out["label"]]]
    out["loss"] = -np.log(np.clip(true_p, EPS, 1.0))
    return out, Embeddings(list(out["path"]), list(out["label"]), features)
