"""Haematoxylin and eosin densities of 8-bit RGB pixels, as skimage's ``rgb2hed`` computes them, from a 256-entry
table of optical densities (no logarithm per pixel; the same float64 values)."""

from __future__ import annotations

import numpy as np
from skimage.color import hed_from_rgb

__all__ = ["OPTICAL", "hed_densities"]

# log(max(v / 255, 1e-6)) / log(1e-6) for every 8-bit value v: rgb2hed's optical density of a channel.
OPTICAL = np.log(np.maximum(np.arange(256, dtype=np.float64) / 255.0, 1e-6)) / np.log(1e-6)


def hed_densities(pixels: np.ndarray, channels: slice | int = slice(None)) -> np.ndarray:
    """skimage ``rgb2hed`` of a uint8 RGB array (haematoxylin, eosin, DAB on the last axis; ``channels`` picks some),
    negative densities set to 0 as rgb2hed does."""
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8 or pixels.shape[-1] != 3:
        raise ValueError(f"hed_densities: expected uint8 RGB pixels, got {pixels.dtype} of shape {pixels.shape}")
    densities = OPTICAL[pixels] @ hed_from_rgb[:, channels]
    return np.maximum(densities, 0.0, out=densities)
