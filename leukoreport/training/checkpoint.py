"""Per-epoch training checkpoints: what a killed train job needs to resume after its last finished epoch.

A checkpoint holds the weights, the optimiser state, the position in the phases, the history so far, the
early-stopping and best-weights state and every random stream (torch, numpy, Python, the DataLoaders' own), so
that a resumed run continues exactly where the killed one stopped. It is a plain ``torch.save`` of tensors,
numbers, strings, lists and dicts, read back with ``weights_only=True``: loading one never runs pickled code.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from leukoreport.base.atomic_io import atomic_path

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_NAME", "TrainState", "checkpoint_callback", "fit_state",
           "load_checkpoint", "plain", "remove_checkpoint", "restore_fit", "restore_rng", "resume_callback",
           "rng_state", "save_checkpoint", "train_fingerprint"]

CHECKPOINT_NAME = "train_checkpoint.pt"
CHECKPOINT_FORMAT = 1


@dataclass
class TrainState:
    """Everything a checkpoint holds; ``phase`` is the phase to run next (``len(phases) + 1`` once all ended) and
    ``phase_epochs`` how many of its epochs have finished."""

    fingerprint: str
    phase: int
    phase_epochs: int
    epochs_done: int  # over all phases: the global epoch the run resumes after
    model: dict
    rows: list[dict]
    phases: list[dict]
    rng: dict
    optimizer: dict | None = None
    fit: dict = field(default_factory=dict)  # recorder, best-weights tracker, early stopping, epoch durations
    format: int = CHECKPOINT_FORMAT


def plain(obj: Any) -> Any:
    """``obj`` with tensor subclasses, numpy scalars and arrays and fastcore lists turned into what ``weights_only``
    loads."""
    import torch

    if isinstance(obj, torch.Tensor):  # fastai's TensorBase and other subclasses become plain tensors
        return obj.detach().clone().as_subclass(torch.Tensor)
    if isinstance(obj, dict):
        return {key: plain(value) for key, value in obj.items()}
    if isinstance(obj, tuple):
        return tuple(plain(value) for value in obj)
    if isinstance(obj, list) or type(obj).__name__ == "L":
        return [plain(value) for value in obj]
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj.copy())
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def train_fingerprint(recipe: dict, seed: int, split_rows: list[dict], init: str) -> str:
    """SHA-256 of what decides the training (recipe, seed, split rows, initial weights): a checkpoint of another
    run is never resumed."""
    text = json.dumps({"recipe": recipe, "seed": seed, "split": split_rows, "init": init}, sort_keys=True,
                      default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def rng_state(dataloaders: list) -> dict:
    """The random streams training draws from: torch's (and CUDA's), numpy's, Python's and each DataLoader's."""
    import torch

    state = {
        "torch": torch.get_rng_state(),
        "numpy": plain(np.random.get_state()),
        "python": random.getstate(),
        "dataloaders": [dl.rng.getstate() for dl in dataloaders],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict, dataloaders: list) -> None:
    """Put back the streams ``rng_state`` saved."""
    import torch

    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    random.setstate(_as_tuples(state["python"]))
    for dl, dl_state in zip(dataloaders, state["dataloaders"]):
        dl.rng.setstate(_as_tuples(dl_state))


def _as_tuples(value: Any) -> Any:
    """``random.setstate`` wants the nested tuples ``getstate`` gave (a round trip may turn them into lists)."""
    return tuple(_as_tuples(v) for v in value) if isinstance(value, list | tuple) else value


def save_checkpoint(path: str | Path, state: TrainState) -> None:
    """Write ``state`` to ``path`` atomically (a kill during the write keeps the previous checkpoint)."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(plain(asdict(state)), tmp)


def load_checkpoint(path: str | Path, fingerprint: str) -> tuple[TrainState | None, str]:
    """The checkpoint at ``path`` if it is this run's, and why not otherwise ('' when there is none)."""
    import torch

    path = Path(path)
    if not path.is_file():
        return None, ""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
        state = TrainState(**data)
    except Exception as exc:  # truncated, from another version, not a checkpoint: start afresh
        return None, f"ignoring {path.as_posix()}: unreadable ({type(exc).__name__}); training from the start"
    if state.format != CHECKPOINT_FORMAT or state.fingerprint != fingerprint:
        return None, (f"ignoring {path.as_posix()}: it belongs to another recipe, split or seed; "
                      "training from the start")
    return state, ""


def fit_state(learn, tracker, stopper, progress_cb) -> dict:
    """The state of a fit between two epochs that the learner's weights and optimiser do not hold."""
    smooth = learn.recorder.smooth_loss
    return {
        "values": [[float(v) for v in row] for row in learn.recorder.values],
        "smooth_count": smooth.count,
        "smooth_val": smooth.val.detach().cpu().clone(),
        "best": float(tracker.best),
        "best_epoch": tracker.best_epoch,
        "best_state": tracker.best_state,
        "seconds": list(tracker.seconds),
        "train_accuracy": list(tracker.train_accuracy),
        "stop_best": float(stopper.best),
        "stop_wait": stopper.wait,
        "durations": list(progress_cb.durations),
    }


def restore_fit(learn, tracker, stopper, progress_cb, fit: dict, rng: dict) -> None:
    """Put back what ``fit_state`` saved, and the random streams, inside a resumed fit."""
    learn.recorder.values = [list(row) for row in fit["values"]]
    learn.recorder.smooth_loss.count, learn.recorder.smooth_loss.val = fit["smooth_count"], fit["smooth_val"]
    tracker.best, tracker.best_epoch, tracker.best_state = fit["best"], fit["best_epoch"], fit["best_state"]
    tracker.seconds, tracker.train_accuracy = list(fit["seconds"]), list(fit["train_accuracy"])
    stopper.best, stopper.wait = fit["stop_best"], fit["stop_wait"]
    progress_cb.durations = list(fit["durations"])
    restore_rng(rng, [learn.dls.train, learn.dls.valid])


def remove_checkpoint(path: str | Path) -> None:
    """Delete the checkpoint once the job's outputs are written."""
    Path(path).unlink(missing_ok=True)


def checkpoint_callback(save: Callable[[int], None]):
    """A fastai callback calling ``save(epochs finished in this fit)`` after every epoch, once the best-weights
    tracker and early stopping have seen it (an epoch that stops the fit is saved by the phase's end instead)."""
    from fastai.callback.core import Callback

    class SaveCheckpoint(Callback):
        order = 70  # after TrackerCallback (60) and EarlyStoppingCallback (63)

        def after_epoch(self):
            save(self.epoch + 1)

    return SaveCheckpoint()


def resume_callback(done: int, restore: Callable[[], None]):
    """A fastai callback that skips the first ``done`` epochs of a fit without running any other callback in them
    (so schedules see their true position, and no recorder or tracker sees an empty epoch), then calls
    ``restore()`` just before the first epoch that runs (or at the fit's end when none is left to run)."""
    from fastai.callback.core import Callback, CancelEpochException

    class ResumeAfter(Callback):
        order = -100  # before every other callback

        def before_fit(self):
            self._silenced: list = []
            self._restored = False

        def _wake(self):
            for cb in self._silenced:
                cb.run = True
            self._silenced = []

        def before_epoch(self):
            self._wake()
            if self.epoch < done:
                self._silenced = [cb for cb in self.learn.cbs if cb is not self and cb.run]
                for cb in self._silenced:
                    cb.run = False
                raise CancelEpochException()
            if not self._restored:
                self._restored = True
                restore()

        def after_fit(self):  # every epoch had finished before the kill: restore for the fit's own ending
            self._wake()
            if not self._restored:
                self._restored = True
                restore()

    return ResumeAfter()
