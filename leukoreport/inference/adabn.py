"""AdaBN (Li et al. 2016): BatchNorm running statistics re-estimated on a set's own images, on a copy of the model;
the learner's own model is never changed."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from leukoreport.base.errors import LeukoError

__all__ = ["adabn_learner", "adapted_model", "batchnorm_layers", "has_batchnorm"]


def batchnorm_layers(model) -> list:
    """Every BatchNorm layer (1d, 2d, 3d, synchronised) of ``model``, in module order."""
    import torch.nn as nn

    kinds = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
    return [m for m in model.modules() if isinstance(m, kinds)]


def has_batchnorm(model) -> bool:
    """Whether ``model`` has a BatchNorm layer (AdaBN is not applicable otherwise)."""
    return bool(batchnorm_layers(model))


def adapted_model(model, batches: Iterable):
    """A deep copy of ``model`` whose BatchNorm running statistics are the cumulative averages (momentum None) over
    ``batches`` of inputs, seen once in train mode for BatchNorm only, without gradients; returned in eval mode.
    A batch of one image is skipped (BatchNorm1d cannot take it in train mode)."""
    import torch

    adapted = copy.deepcopy(model).eval()
    layers = batchnorm_layers(adapted)
    if not layers:
        raise LeukoError("AdaBN: the model has no BatchNorm layer")
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None
        layer.train()
    seen = 0
    with torch.no_grad():
        for xb in batches:
            if len(xb) < 2:
                continue
            adapted(xb)
            seen += len(xb)
    if seen == 0:
        raise LeukoError("AdaBN: needs a batch of at least 2 images")
    return adapted.eval()


@contextmanager
def adabn_learner(learn, paths: list[Path], batch_size: int = 64, num_workers: int = 0) -> Iterator:
    """``learn`` with an AdaBN copy of its model (statistics from ``paths`` through the learner's own item and
    batch transforms) for the duration of the block; its own model is put back afterwards, unchanged."""
    dl = learn.dls.test_dl(list(paths), bs=batch_size, num_workers=num_workers)
    original = learn.model
    adapted = adapted_model(original, (batch[0] for batch in dl))
    learn.model = adapted
    try:
        yield learn
    finally:
        learn.model = original
