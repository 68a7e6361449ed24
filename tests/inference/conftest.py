"""Fixtures for the inference tests: a trained, exported model."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest


def _exported_model(split: pd.DataFrame, cfg, folder: Path, seed: int = 3) -> Path:
    """Train `cfg` on `split` (one thread) and export the learner to ``folder/model.pkl``."""
    from leukoreport.training.two_phase import export_learner, train

    learn, _, _ = train(split, cfg, seed=seed, threads=1)
    out = folder / "model.pkl"
    export_learner(learn, out)
    return out


@pytest.fixture(scope="session")
def exported_model():
    """``exported_model(split, cfg, folder, seed=3)``: train `cfg` on `split` and export it to ``folder/model.pkl``;
    returns that path."""
    return _exported_model
