"""Pooled backbone features (the global average of the ResNet body's last feature map, the head's input)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["pooled_features"]


@contextmanager
def pooled_features(model) -> Iterator[list]:
    """Collect the average-pooled output of ``model[0]`` (the body) of every forward pass, as CPU float32."""
    batches: list = []

    def hook(_module, _inputs, output):
        batches.append(output.detach().float().mean(dim=(2, 3)).cpu().numpy())

    handle = model[0].register_forward_hook(hook)
    try:
        yield batches
    finally:
        handle.remove()
