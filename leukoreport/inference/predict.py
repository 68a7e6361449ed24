"""Classify new images with an exported learner: no labels, bad files reported row by row, optional TTA."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from leukoreport.base.atomic_io import write_csv
from leukoreport.base.errors import LeukoError
from leukoreport.data.images import is_hidden, validate_image
from leukoreport.inference.model_files import load_model_file
from leukoreport.stats.metrics import prob_columns

__all__ = ["DEVICES", "OK", "Prediction", "check_image", "class_names", "collect_images", "load_learner_on",
           "predict_files", "predict_images", "predict_probabilities", "resolve_device"]

OK = "ok"
DEVICES = ("auto", "cpu", "cuda")


@dataclass
class Prediction:
    """What `leukoreport predict` produced: the table and the failed rows (path, reason)."""

    table: pd.DataFrame
    failures: list[tuple[str, str]]

    @property
    def n_ok(self) -> int:
        """Rows whose status is ``ok``."""
        return int((self.table["status"] == OK).sum())


def collect_images(paths: list[str | Path]) -> list[Path]:
    """Every file named in ``paths``: files as given, folders recursively (hidden entries skipped, sorted).

    Every non-hidden file in a folder is kept, images or not, so that nothing is skipped silently; a file
    that is not an image gets a failed row later. Duplicates keep their first place.
    """
    found: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found += sorted(_walk(path, set()), key=lambda p: p.as_posix())
        elif path.exists() or path.is_symlink():
            found.append(path)
        else:
            raise LeukoError(f"{path.as_posix()}: no such file or folder")
    unique = list(dict.fromkeys(found))
    if not unique:
        raise LeukoError(f"{' '.join(Path(p).as_posix() for p in paths)}: no files found")
    return unique


def _walk(folder: Path, seen: set[str]) -> list[Path]:
    """Files below ``folder`` that are neither hidden nor OS junk; a folder reached twice through links is listed
    once."""
    real = os.path.realpath(folder)
    if real in seen:
        return []
    seen.add(real)
    try:
        entries = sorted(folder.iterdir(), key=lambda p: p.name)
    except OSError as exc:
        raise LeukoError(f"{folder.as_posix()}: cannot list folder ({exc.strerror or exc})") from exc
    files: list[Path] = []
    for entry in entries:
        if is_hidden(entry):  # hidden names and OS junk (Thumbs.db, desktop.ini, ...), as in the workflow
            continue
        if entry.is_dir():
            files += _walk(entry, seen)
        else:  # regular files, and broken links (reported as unreadable)
            files.append(entry)
    return files


def check_image(path: Path) -> str:
    """``ok``, or why ``path`` cannot be classified (one line, without the path itself)."""
    try:
        validate_image(path)
    except LeukoError as exc:
        message = str(exc)
        prefix = f"{path.as_posix()}: "
        return message[len(prefix):] if message.startswith(prefix) else message
    return OK


def resolve_device(name: str) -> str:
    """``auto``: CUDA when available, else CPU; ``cuda`` (or ``cuda:N``) must be available."""
    from leukoreport.training.device import resolve_device as resolve

    return resolve(name, "--device")


def load_learner_on(model: str | Path, device: str = "cpu"):
    """Load a model onto ``device`` in inference mode: a ``model.pkl`` (unpickled, with fastai's warning; refused
    when a train.json beside it records another SHA-256) or a ``model.safetensors``/``model.json`` pair (rebuilt,
    nothing unpickled); see ``inference.model_files``."""
    path = Path(model)
    if not path.is_file():
        raise LeukoError(f"{path.as_posix()}: model file not found")
    learn = load_model_file(path, cpu=True)
    if device != "cpu":
        import torch

        learn.dls.to(torch.device(device))
        learn.model.to(device)
    learn.model.eval()
    return learn


def class_names(learn) -> list[str]:
    """The model's classes, in the order of its outputs."""
    return [str(c) for c in learn.dls.vocab]


def predict_probabilities(learn, paths: list[Path], batch_size: int = 64, tta: bool = False,
                          seed: int = 0, progress: Callable[[str], None] | None = None,
                          progress_every: int | None = None) -> np.ndarray:
    """Class probabilities (images × classes, float64) of already validated images.

    With ``tta``, fastai ``Learner.tta`` (4 passes with the training augmentation, averaged, then
    ``0.75 * augmented + 0.25 * plain``), its random augmentations seeded with ``seed``. ``progress`` gets a
    progress line every ``progress_every`` batches (default ``evaluate.PROGRESS_EVERY``) while images are left.
    """
    from leukoreport.inference import evaluate
    from leukoreport.inference.evaluate import (
        batch_progress,
        fast_inference,
        inference_workers,
        seeded_tta,
        tta_progress,
    )

    workers = learn.dls.valid.fake_l.num_workers  # the model's; TTA keeps them (its crops are drawn in them)
    if not tta:
        workers = inference_workers(len(paths), batch_size, workers)
    dl = learn.dls.test_dl(list(paths), bs=batch_size, device=learn.dls.device, num_workers=workers)
    every = progress_every or evaluate.PROGRESS_EVERY
    counter = [] if progress is None else [
        tta_progress(len(paths), every, progress) if tta else batch_progress(len(paths), every, progress, "classified")]
    with learn.no_bar(), fast_inference(learn.model), learn.added_cbs(counter):  # removed again afterwards
        if tta:
            probs = seeded_tta(learn, dl, seed)
        else:
            probs, _ = learn.get_preds(dl=dl)
    return probs.detach().cpu().float().numpy().astype(np.float64)


def _predict_each(learn, paths: list[Path], batch_size: int, tta: bool, seed: int,
                  progress: Callable[[str], None] | None = None, progress_every: int | None = None
                  ) -> tuple[np.ndarray, list[str]]:
    """Probabilities of every image, falling back to one image at a time when the batch fails."""
    try:
        return predict_probabilities(learn, paths, batch_size, tta, seed, progress, progress_every), \
            [OK] * len(paths)
    except Exception:  # one image fastai cannot load spoils the batch: find it
        pass
    rows, status = [], []
    for path in paths:
        try:
            rows.append(predict_probabilities(learn, [path], 1, tta, seed)[0])
            status.append(OK)
        except Exception as exc:
            rows.append(np.full(len(class_names(learn)), np.nan))
            status.append(f"cannot classify ({type(exc).__name__}: {' '.join(str(exc).split())})")
    return np.array(rows), status


def predict_images(learn, images: list[Path], batch_size: int = 64, tta: bool = False,
                   seed: int = 0, progress: Callable[[str], None] | None = None,
                   progress_every: int | None = None) -> Prediction:
    """One row per image: ``path, prediction, prob_<class>..., status``; unreadable files get a reason.

    Every image is fully decoded (``validate_image``) before any prediction; failed rows keep empty
    prediction and probabilities. ``progress``, ``progress_every``: as in ``predict_probabilities``.
    """
    classes = class_names(learn)
    status = [check_image(path) for path in images]
    good = [i for i, s in enumerate(status) if s == OK]
    probs = np.full((len(images), len(classes)), np.nan)
    if good:
        got, got_status = _predict_each(learn, [images[i] for i in good], batch_size, tta, seed, progress,
                                        progress_every)
        probs[good] = got
        for i, s in zip(good, got_status):
            status[i] = s
    table = pd.DataFrame({"path": [p.as_posix() for p in images]})
    ok = np.array([s == OK for s in status], dtype=bool)
    table["prediction"] = [classes[int(np.argmax(row))] if fine else "" for row, fine in zip(probs, ok)]
    for col, values in zip(prob_columns(classes), probs.T):
        table[col] = values
    table["status"] = status
    failures = [(path, s) for path, s in zip(table["path"], status) if s != OK]
    return Prediction(table, failures)


def predict_files(model: str | Path, paths: list[str | Path], out: str | Path, batch_size: int = 64,
                  tta: bool = False, device: str = "auto", seed: int = 0,
                  progress: Callable[[str], None] | None = None) -> Prediction:
    """Classify every image under ``paths`` with ``model`` and write the table to ``out`` atomically
    (``progress``: as in ``predict_probabilities``)."""
    out = Path(out)
    if out.is_dir():
        raise LeukoError(f"--out {out.as_posix()}: is a folder (give a .csv file name)")
    if not Path(model).is_file():
        raise LeukoError(f"{Path(model).as_posix()}: model file not found")
    images = collect_images(list(paths))
    learn = load_learner_on(model, resolve_device(device))
    result = predict_images(learn, images, batch_size, tta, seed, progress)
    write_csv(result.table, out)
    return result
