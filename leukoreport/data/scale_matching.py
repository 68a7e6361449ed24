"""Scale matching: resize a set's images so that the cell covers the same share of the image as in the training
images. The cell share of an image is the fraction of its pixels whose haematoxylin density (skimage ``rgb2hed``)
exceeds the image's own Otsu threshold (the nucleus and the dense cytoplasm); a set's factor is
``sqrt(median training share / median set share)`` (a linear factor, shares being areas)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from PIL import Image
from skimage.filters import threshold_otsu

from leukoreport.base.errors import LeukoError
from leukoreport.data.stain_density import hed_densities

__all__ = ["MAX_FACTOR", "ScaleMatch", "border_colour", "cell_share", "match_scale", "rescale", "scale_factor"]

MAX_FACTOR = 2.5  # linear factors are clipped to [1 / MAX_FACTOR, MAX_FACTOR] (an estimate beyond is not trusted)


def cell_share(rgb: np.ndarray) -> float:
    """Fraction of the pixels of a uint8 RGB image whose haematoxylin density exceeds the image's Otsu threshold
    (0 for an image of one colour)."""
    density = hed_densities(np.asarray(rgb, dtype=np.uint8), 0)
    if float(density.max()) - float(density.min()) < 1e-9:
        return 0.0
    return float((density > threshold_otsu(density)).mean())


@dataclass(frozen=True)
class ScaleMatch:
    """A set's scale matching: the median cell shares, the factor applied (1 within ``tolerance``) and why."""

    train_share: float
    set_share: float
    estimate: float  # sqrt(train_share / set_share) before clipping and tolerance
    factor: float
    note: str

    def to_dict(self) -> dict:
        """The JSON form (``scale`` in intervention_images.json and interventions.json; a NaN estimate as null)."""
        return {"train_cell_share": self.train_share, "set_cell_share": self.set_share,
                "estimate": None if math.isnan(self.estimate) else self.estimate, "factor": self.factor,
                "note": self.note}

    @classmethod
    def from_dict(cls, data: dict) -> ScaleMatch:
        """Back from ``to_dict`` (KeyError, TypeError or ValueError when malformed)."""
        estimate = math.nan if data["estimate"] is None else float(data["estimate"])
        return cls(float(data["train_cell_share"]), float(data["set_cell_share"]), estimate, float(data["factor"]),
                   str(data["note"]))


def scale_factor(train_share: float, set_shares: Iterable[float], tolerance: float = 0.1) -> ScaleMatch:
    """The factor for a set whose images have cell shares ``set_shares``: ``sqrt(train / median(set))``, clipped to
    ``[1 / MAX_FACTOR, MAX_FACTOR]``, and 1 (no change) when within ``tolerance`` of 1."""
    shares = np.asarray(list(set_shares), dtype=np.float64)
    if not (train_share > 0) or len(shares) == 0:
        raise LeukoError(f"scale matching: needs a positive training cell share and images (got {train_share}, "
                         f"{len(shares)} images)")
    median = float(np.median(shares))
    if median <= 0:
        return ScaleMatch(train_share, median, math.nan, 1.0, "not rescaled: no haematoxylin-dense area found")
    estimate = math.sqrt(train_share / median)
    factor = min(max(estimate, 1 / MAX_FACTOR), MAX_FACTOR)
    if abs(factor - 1) <= tolerance:
        return ScaleMatch(train_share, median, estimate, 1.0,
                          f"not rescaled: factor {estimate:.3f} within {tolerance:g} of 1")
    clipped = " (clipped)" if factor != estimate else ""
    how = "central crop enlarged" if factor > 1 else "padded with the border colour"
    return ScaleMatch(train_share, median, estimate, factor, f"rescaled by {factor:.3f}{clipped}: {how}")


def border_colour(rgb: np.ndarray) -> tuple[int, int, int]:
    """The median colour of the outermost ring of pixels."""
    ring = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]]).reshape(-1, 3)
    return tuple(int(v) for v in np.median(ring, axis=0))


def rescale(img: Image.Image, factor: float) -> Image.Image:
    """``img`` (RGB) with its content enlarged by ``factor`` at the same size: > 1 crops the central
    ``1 / factor`` of each side and resizes it up; < 1 pads to ``size / factor`` with the border colour and resizes
    down (bilinear); 1 returns it unchanged."""
    if factor == 1:
        return img
    width, height = img.size
    if factor > 1:
        w, h = max(1, round(width / factor)), max(1, round(height / factor))
        left, top = (width - w) // 2, (height - h) // 2
        return img.crop((left, top, left + w, top + h)).resize((width, height), Image.BILINEAR)
    w, h = round(width / factor), round(height / factor)
    canvas = Image.new("RGB", (w, h), border_colour(np.asarray(img)))
    canvas.paste(img, ((w - width) // 2, (h - height) // 2))
    return canvas.resize((width, height), Image.BILINEAR)


def match_scale(rgb: np.ndarray, factor: float) -> np.ndarray:
    """``rescale`` of a uint8 RGB array."""
    return np.asarray(rescale(Image.fromarray(np.asarray(rgb, dtype=np.uint8)), factor))
