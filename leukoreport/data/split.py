"""Subsample an ImageFolder table and split it into train, valid and test, stratified per label.

No fastai/torch here: this module must import fast.
"""

from __future__ import annotations

import math
import numbers
from pathlib import PurePosixPath

import numpy as np
import pandas as pd

from leukoreport.base.errors import LeukoError

__all__ = ["SPLITS", "split_counts", "stratified_split", "subsample"]

SPLITS: tuple[str, str, str] = ("train", "valid", "test")


def subsample(df: pd.DataFrame, per_class: int | None, seed: int) -> pd.DataFrame:
    """Keep at most `per_class` rows per label, drawn with `seed`; row order is kept (None -> unchanged)."""
    if per_class is None:
        return df
    if isinstance(per_class, bool) or not isinstance(per_class, numbers.Integral) or per_class < 1:
        raise LeukoError(f"max_per_class: must be a positive integer or null, got {per_class!r}")
    keep = []
    for _, group in df.groupby("label", sort=True):
        if len(group) <= per_class:
            keep.extend(group.index)
        else:
            keep.extend(group.sample(n=int(per_class), random_state=seed).index)
    return df.loc[df.index.isin(keep)].reset_index(drop=True)


def _check_fractions(fractions: tuple[float, float, float]) -> tuple[float, float, float]:
    """Return the fractions as floats, or raise LeukoError naming `split_fractions`."""
    try:
        fr = tuple(float(f) for f in fractions)
    except (TypeError, ValueError) as exc:
        raise LeukoError(f"split_fractions: must be three numbers (train, valid, test), got {fractions!r}") from exc
    if len(fr) != 3 or not all(math.isfinite(f) and f > 0 for f in fr):
        raise LeukoError(f"split_fractions: must be three positive numbers (train, valid, test), got {fractions!r}")
    if not math.isclose(sum(fr), 1.0, abs_tol=1e-6):
        raise LeukoError(f"split_fractions: must sum to 1, got {fractions!r} (sum {sum(fr):g})")
    return fr  # type: ignore[return-value]


def _round(x: float) -> int:
    """Round half up, robust to float noise (500 * 0.15 -> 75)."""
    return int(math.floor(x + 0.5 + 1e-9))


def _class_counts(n: int, fractions: tuple[float, float, float]) -> tuple[int, int, int] | None:
    """Per-class (train, valid, test) sizes with at least one in each; None if n < 3."""
    if n < 3:
        return None
    n_valid = max(1, _round(n * fractions[1]))
    n_test = max(1, _round(n * fractions[2]))
    while n - n_valid - n_test < 1:
        if n_valid >= n_test:
            n_valid -= 1
        else:
            n_test -= 1
    return n - n_valid - n_test, n_valid, n_test


def _class_where(label: str, paths: pd.Series) -> str:
    """The class folder if all its paths share one, else `class 'label'` (prefix for messages)."""
    parents = {PurePosixPath(p).parent.as_posix() for p in paths}
    return parents.pop() if len(parents) == 1 else f"class '{label}'"


def stratified_split(
    df: pd.DataFrame,
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    seed: int = 42,
) -> pd.DataFrame:
    """Add `split` (train/valid/test), stratified per label with exact rounded per-class counts.

    Depends only on the set of rows and `seed`; sorted by split, label, path with a fresh index.
    """
    fr = _check_fractions(fractions)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise LeukoError(f"split_seed: must be a non-negative integer, got {seed!r}")
    data = df.sort_values(["label", "path"], kind="stable", ignore_index=True)
    split = np.empty(len(data), dtype=object)
    rng = np.random.default_rng(int(seed))
    for label, group in data.groupby("label", sort=True):
        counts = _class_counts(len(group), fr)
        if counts is None:
            raise LeukoError(f"{_class_where(str(label), group['path'])}: class '{label}' has only {len(group)} "
                             f"image(s); need at least 3 to put one in each of train, valid and test")
        order = group.index.to_numpy()[rng.permutation(len(group))]
        n_train, n_valid, _ = counts
        split[order[:n_train]] = "train"
        split[order[n_train:n_train + n_valid]] = "valid"
        split[order[n_train + n_valid:]] = "test"
    data["split"] = split
    rank = data["split"].map({s: i for i, s in enumerate(SPLITS)})
    data = data.assign(_rank=rank).sort_values(["_rank", "label", "path"], kind="stable", ignore_index=True)
    return data.drop(columns="_rank")


def split_counts(split: pd.DataFrame) -> pd.DataFrame:
    """Images per label and split (columns label, train, valid, test, total) plus a final `total` row."""
    table = pd.crosstab(split["label"], split["split"]).reindex(columns=list(SPLITS), fill_value=0)
    table = table.sort_index().astype(int)
    table["total"] = table.sum(axis=1)
    table.loc["total"] = table.sum(axis=0)
    table.columns.name = None
    return table.rename_axis("label").reset_index()
