"""Bit-for-bit comparison of a run trained twice with the same seed: its predictions and its model weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from leukoreport.base.errors import LeukoError
from leukoreport.inference.model_files import load_model_file

__all__ = ["compare_predictions", "compare_weights", "reproducibility_record"]


def _probs(pred: pd.DataFrame, where: str) -> tuple[list[str], pd.DataFrame]:
    """The ``prob_*`` columns of a predictions table (indexed by path); LeukoError when there are none."""
    columns = [c for c in pred.columns if str(c).startswith("prob_")]
    if "path" not in pred.columns or not columns:
        raise LeukoError(f"{where}: needs a 'path' column and prob_<class> columns")
    return columns, pred.set_index("path")[columns]


def compare_predictions(a: pd.DataFrame, b: pd.DataFrame, where: str = "predictions") -> dict:
    """``identical_predictions`` (every probability equal, bit for bit) and ``max_probability_difference`` of two
    predictions tables over the same images and classes; LeukoError when images or classes differ."""
    cols_a, probs_a = _probs(a, where)
    cols_b, probs_b = _probs(b, where)
    if sorted(cols_a) != sorted(cols_b) or sorted(probs_a.index) != sorted(probs_b.index):
        raise LeukoError(f"{where}: the two predictions tables list different images or classes")
    x = probs_a.sort_index()[cols_a].to_numpy(dtype=np.float64)
    y = probs_b.sort_index()[cols_a].to_numpy(dtype=np.float64)
    return {"identical_predictions": bool(np.array_equal(x, y)),
            "max_probability_difference": float(np.abs(x - y).max()) if x.size else 0.0}


def compare_weights(state_a: dict, state_b: dict, where: str = "models") -> dict:
    """``identical_weights`` (``torch.equal`` on every tensor), ``n_tensors``, ``n_tensors_different`` and
    ``max_weight_difference`` (largest absolute difference of any entry) of two state_dicts with the same keys."""
    import torch

    if list(state_a) != list(state_b):
        raise LeukoError(f"{where}: the two models have different parameters")
    different, largest = 0, 0.0
    for name, ta in state_a.items():
        tb = state_b[name]
        if ta.shape != tb.shape:
            raise LeukoError(f"{where}: tensor '{name}' has shape {tuple(ta.shape)} and {tuple(tb.shape)}")
        if torch.equal(ta, tb):
            continue
        different += 1
        diff = (ta.detach().cpu().double() - tb.detach().cpu().double()).abs()
        largest = max(largest, float(diff.max()) if diff.numel() else 0.0)
    return {"identical_weights": different == 0, "n_tensors": len(state_a), "n_tensors_different": different,
            "max_weight_difference": largest}


def reproducibility_record(split_seed: int, seed: int, original_model: str | Path, original_predictions: str | Path,
                           model: str | Path, predictions: str | Path) -> dict:
    """reproducibility.json: the retrained ``model`` and its ``predictions`` against the original run's, bit for
    bit (both models loaded on the CPU)."""
    pred = compare_predictions(pd.read_csv(original_predictions), pd.read_csv(predictions),
                               f"{original_predictions} and {predictions}")
    weights = compare_weights(load_model_file(original_model).model.state_dict(),
                              load_model_file(model).model.state_dict(),
                              f"{original_model} and {model}")
    return {"split_seed": int(split_seed), "seed": int(seed), **pred, **weights,
            "predictions": Path(predictions).as_posix(), "model": Path(model).as_posix()}
