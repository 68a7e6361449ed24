"""Predictions of an exported learner on a labelled image list (test split or an external set)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from leukoreport.base.errors import LeukoError
from leukoreport.base.step_log import eta_seconds, rough_duration
from leukoreport.data.embeddings import Embeddings
from leukoreport.inference.features import pooled_features
from leukoreport.stats.metrics import prob_columns

__all__ = ["EPS", "PROGRESS_EVERY", "TTA_PASSES", "batch_progress", "fast_inference", "inference_workers",
           "predict", "predict_with_features", "progress_line", "seeded_tta", "tta_progress"]

EPS = 1e-15
PROGRESS_EVERY = 10  # batches between two progress lines of a prediction pass
TTA_PASSES = 5  # fastai ``learn.tta``: four augmented passes (its n=4) and a plain one


def inference_workers(n_images: int, batch_size: int, requested: int) -> int:
    """DataLoader workers for one inference pass: none when the images fit in one batch (a worker could overlap
    nothing, and starting it costs more than decoding in this process), else ``requested``."""
    return 0 if n_images <= batch_size else max(0, requested)


@contextmanager
def fast_inference(model) -> Iterator[None]:
    """``model``'s convolution weights in channels-last memory format for the pass when it is on a CPU (oneDNN's
    faster layout; same values, probabilities within about 1e-6), contiguous again afterwards; gradients untouched."""
    import torch

    weights = [p for p in model.parameters() if p.dim() == 4 and p.device.type == "cpu"]
    for p in weights:
        p.data = p.data.contiguous(memory_format=torch.channels_last)
    try:
        yield
    finally:
        for p in weights:
            p.data = p.data.contiguous()


def progress_line(done: int, total: int, seconds: float, what: str = "evaluated") -> str:
    """'evaluated 640/7500 images (8.5%), 42 s, est. 7 min left' after ``seconds`` for ``done`` images."""
    left = eta_seconds(seconds / done, done, total) if done else float("nan")
    return (f"{what} {done}/{total} images ({100 * done / total:.1f}%), {rough_duration(seconds)}, "
            f"est. {rough_duration(left)} left")


def batch_progress(total: int, every: int, progress: Callable[[str], None], what: str = "evaluated"):
    """A fastai callback that hands ``progress`` a ``progress_line`` every ``every`` prediction batches counted over
    all the passes it sees (``total`` images together), none once all are done; it draws no random numbers."""
    from fastai.callback.core import Callback
    from fastai.torch_core import find_bs

    class BatchProgress(Callback):
        def __init__(self):
            self.batches, self.images, self._start = 0, 0, time.perf_counter()

        def after_batch(self):
            self.batches += 1
            self.images += find_bs(self.learn.xb)
            if self.batches % every == 0 and self.images < total:
                progress(progress_line(self.images, total, time.perf_counter() - self._start, what))

    return BatchProgress()


def tta_progress(n_images: int, every: int, progress: Callable[[str], None]):
    """``batch_progress`` over the ``TTA_PASSES`` passes of fastai ``learn.tta`` on ``n_images`` images."""
    return batch_progress(TTA_PASSES * n_images, every, progress, f"test-time augmentation ({TTA_PASSES} passes):")


def seeded_tta(learn, dl, seed: int):
    """fastai ``learn.tta(dl=dl)`` probabilities with its random augmentations seeded by
    ``set_seed(seed, reproducible=True)`` just before, so that a rerun repeats them."""
    from fastai.torch_core import set_seed

    set_seed(seed, reproducible=True)
    probs, _ = learn.tta(dl=dl)
    return probs


def predict(learn, images: pd.DataFrame, batch_size: int = 64, num_workers: int = 0, tta: bool = False,
            seed: int = 0, progress: Callable[[str], None] = print,
            progress_every: int = PROGRESS_EVERY) -> pd.DataFrame:
    """Rows of ``images`` (path, label) with prediction, one ``prob_<class>`` column per class, and loss.

    ``loss`` is the cross-entropy of the true class, ``-ln p(label)``; ``tta`` and ``progress`` as in
    ``predict_with_features``.
    """
    return predict_with_features(learn, images, batch_size, num_workers, tta, seed, progress, progress_every)[0]


def predict_with_features(learn, images: pd.DataFrame, batch_size: int = 64, num_workers: int = 0,
                          tta: bool = False, seed: int = 0, progress: Callable[[str], None] = print,
                          progress_every: int = PROGRESS_EVERY) -> tuple[pd.DataFrame, Embeddings]:
    """``predict`` and the pooled backbone features of every image, from the same single forward pass.

    With ``tta`` the probabilities come from fastai ``learn.tta`` seeded with ``seed`` (``seeded_tta``);
    the features still come from the one plain forward pass. ``progress`` gets a ``progress_line`` every
    ``progress_every`` batches while images are left (nothing for a set of at most that many batches).
    """
    classes = [str(c) for c in learn.dls.vocab]
    unknown = sorted(set(images["label"]) - set(classes))
    if unknown:
        raise LeukoError(f"label '{unknown[0]}': not a class of the model ({', '.join(classes)})")
    out = images[["path", "label"]].reset_index(drop=True).copy()
    if len(out) == 0:
        raise LeukoError("no images to evaluate")
    paths = [Path(p) for p in out["path"]]
    dl = learn.dls.test_dl(paths, bs=batch_size, num_workers=inference_workers(len(out), batch_size, num_workers))
    with learn.no_bar(), fast_inference(learn.model):
        with pooled_features(learn.model) as batches:
            probs, _ = learn.get_preds(dl=dl, cbs=[batch_progress(len(out), progress_every, progress)])
        if tta:  # the requested workers: TTA's random crops are drawn where the items are loaded
            tta_dl = learn.dls.test_dl(paths, bs=batch_size, num_workers=num_workers)
            # the callback is removed again afterwards: the learner is left as it came
            with learn.added_cbs([tta_progress(len(out), progress_every, progress)]):
                probs = seeded_tta(learn, tta_dl, seed).detach().cpu()
    features = np.concatenate(batches)
    probs = probs.float().numpy().astype(np.float64)
    out["prediction"] = [classes[i] for i in probs.argmax(axis=1)]
    for col, values in zip(prob_columns(classes), probs.T):
        out[col] = values
    index = {c: i for i, c in enumerate(classes)}
    true_p = probs[np.arange(len(out)), [index[lab] for lab in out["label"]]]
    out["loss"] = -np.log(np.clip(true_p, EPS, 1.0))
    return out, Embeddings(list(out["path"]), list(out["label"]), features)
