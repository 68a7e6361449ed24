"""Shared fixtures: tiny synthetic ImageFolder data sets that train in seconds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
COLOURS = {"alpha": (200, 40, 40), "beta": (40, 200, 40), "gamma": (40, 40, 200)}


def make_image_folder(root: Path, per_class: int = 8, size: int = 40, seed: int = 0, classes=COLOURS) -> Path:
    """Write an ImageFolder of noisy colour squares, one colour per class."""
    rng = np.random.default_rng(seed)
    for name, colour in classes.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = np.clip(np.array(colour) + rng.normal(0, 30, (size, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{name}_{i:02d}.png")
    return root


@pytest.fixture(scope="session")
def tiny_split(tmp_path_factory) -> pd.DataFrame:
    """A split.csv-like frame over a tiny synthetic data set (3 classes x 10 images)."""
    from leukoreport.data import discover, stratified_split

    root = make_image_folder(tmp_path_factory.mktemp("tiny") / "images", per_class=10)
    return stratified_split(discover(root), (0.6, 0.2, 0.2), seed=42)


def exported_model(split: pd.DataFrame, cfg, folder: Path, seed: int = 3) -> Path:
    """Train `cfg` on `split` (one thread) and export the learner to ``folder/model.pkl``."""
    from leukoreport.train import export_learner, train

    learn, _, _ = train(split, cfg, seed=seed, threads=1)
    out = folder / "model.pkl"
    export_learner(learn, out)
    return out
