"""Fixtures for the inference tests: a trained, exported model and a crafted (hostile) pickle."""

from __future__ import annotations

import pickle
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import pytest


def _exported_model(split: pd.DataFrame, cfg, folder: Path, seed: int = 3, safe: bool = False) -> Path:
    """Train `cfg` on `split` (one thread) and export the learner to ``folder/model.pkl``; with `safe` also
    ``model.safetensors`` and ``model.json`` beside it (recipe: the config as a dict)."""
    from leukoreport.training.safe_export import export_safe
    from leukoreport.training.two_phase import export_learner, train

    learn, _, _ = train(split, cfg, seed=seed, threads=1)
    out = folder / "model.pkl"
    export_learner(learn, out)
    if safe:
        export_safe(learn, folder / "model.safetensors", folder / "model.json", asdict(cfg))
    return out


@pytest.fixture(scope="session")
def exported_model():
    """``exported_model(split, cfg, folder, seed=3, safe=False)``: train `cfg` on `split` and export it to
    ``folder/model.pkl`` (with `safe`, also ``model.safetensors`` and ``model.json``); returns the model.pkl path."""
    return _exported_model


class _Payload:
    """Unpickling this creates the file ``marker``: the stand-in for a hostile model file's code."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('pwned')",)


def _write_crafted_pickle(path: Path, marker: Path) -> Path:
    """Write to `path` a pickle whose unpickling creates `marker`; returns `path`."""
    path.write_bytes(pickle.dumps(_Payload(marker)))
    return path


@pytest.fixture(scope="session")
def write_crafted_pickle():
    """``write_crafted_pickle(path, marker)``: a pickle at `path` whose unpickling runs code that creates the file
    `marker` (only the builtin ``exec`` is referenced, so it loads anywhere); returns `path`."""
    return _write_crafted_pickle
