"""Pooled backbone features as records and ``.npz`` files (computed by ``leukoreport.inference.features``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from leukoreport.base.atomic_io import atomic_path
from leukoreport.base.errors import LeukoError

__all__ = ["Embeddings", "load_embeddings", "save_embeddings", "train_sample"]


@dataclass
class Embeddings:
    """One dataset's features: ``features[i]`` belongs to ``paths[i]`` with label ``labels[i]``."""

    paths: list[str]
    labels: list[str]
    features: np.ndarray

    def __post_init__(self) -> None:
        if self.features.ndim != 2 or len(self.features) != len(self.paths) or len(self.paths) != len(self.labels):
            raise LeukoError(f"embeddings: {len(self.paths)} paths, {len(self.labels)} labels and features of "
                             f"shape {self.features.shape} do not match")


def save_embeddings(emb: Embeddings, out: str | Path) -> None:
    """Write ``paths``, ``labels`` and ``features`` (float32) to an ``.npz`` file atomically."""
    with atomic_path(out) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, paths=np.array(emb.paths, dtype=str), labels=np.array(emb.labels, dtype=str),
                 features=emb.features.astype(np.float32))


def load_embeddings(path: str | Path) -> Embeddings:
    """An embeddings file written by ``save_embeddings``; LeukoError naming it when unreadable."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            return Embeddings([str(p) for p in data["paths"]], [str(x) for x in data["labels"]],
                              np.asarray(data["features"], dtype=np.float32))
    except FileNotFoundError:
        raise LeukoError(f"{path.as_posix()}: file not found") from None
    except (OSError, ValueError, KeyError) as exc:
        raise LeukoError(f"{path.as_posix()}: not an embeddings file ({exc})") from None


def train_sample(split, limit: int | None, seed: int):
    """The training rows of a split.csv frame, or a seeded sample of ``limit`` of them (stratified by label)."""
    rows = split[split["split"] == "train"]
    if limit is None or len(rows) <= limit:
        return rows.reset_index(drop=True)
    share = limit / len(rows)
    parts = [g.sample(n=max(1, round(len(g) * share)), random_state=seed) for _, g in rows.groupby("label", sort=True)]
    picked = np.concatenate([p.index.to_numpy() for p in parts])
    return rows.loc[np.sort(picked)].reset_index(drop=True)
