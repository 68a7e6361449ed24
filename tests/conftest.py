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
    from leukoreport.data.images import discover, stratified_split

    root = make_image_folder(tmp_path_factory.mktemp("tiny") / "images", per_class=10)
    return stratified_split(discover(root), (0.6, 0.2, 0.2), seed=42)


def exported_model(split: pd.DataFrame, cfg, folder: Path, seed: int = 3) -> Path:
    """Train `cfg` on `split` (one thread) and export the learner to ``folder/model.pkl``."""
    from leukoreport.training.two_phase import export_learner, train

    learn, _, _ = train(split, cfg, seed=seed, threads=1)
    out = folder / "model.pkl"
    export_learner(learn, out)
    return out


def predict_without_leukoreport(model: Path, image: str, cwd: Path) -> tuple[str, float, str]:
    """Load `model` with fastai's load_learner alone in a Python where importing leukoreport fails, and predict
    `image`; returns (predicted class, sum of the probabilities, stdout)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'leukoreport': raise ImportError('leukoreport is blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "sys.modules.pop('leukoreport', None)\n"
        "try:\n    import leukoreport\nexcept ImportError:\n    print('BLOCKED')\n"
        "from fastai.vision.all import load_learner\n"
        f"learn = load_learner({str(model)!r})\n"
        f"pred, idx, probs = learn.predict({image!r})\n"
        "print('PRED', pred, float(probs.sum()))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-2000:]
    _, pred, total = [line for line in proc.stdout.splitlines() if line.startswith("PRED")][0].split()
    return pred, float(total), proc.stdout
