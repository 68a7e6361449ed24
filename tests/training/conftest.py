"""Fixtures for the training tests: predicting with an exported model where leukoreport cannot be imported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def _predict_without_leukoreport(model: Path, image: str, cwd: Path) -> tuple[str, float, str]:
    """Load `model` with fastai's load_learner alone in a Python where importing leukoreport fails, and predict
    `image`; returns (predicted class, sum of the probabilities, stdout)."""
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


@pytest.fixture(scope="session")
def predict_without_leukoreport():
    """``predict_without_leukoreport(model, image, cwd)``: (predicted class, sum of the probabilities, stdout) of
    `model` loaded with fastai's load_learner alone, in a Python where importing leukoreport fails."""
    return _predict_without_leukoreport
