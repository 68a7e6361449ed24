"""Stain and colour augmentation of training batches: HED jitter (Tellez et al. 2018) or HSV jitter.

Both are pixel-wise torch operations on the device, drawn per image from torch's random generator, and run
on the training split only (``split_idx = 0``), after fastai's ``aug_transforms`` and before ``Normalize``.
The exported learner never holds them (``strip_leukoreport``), so ``model.pkl`` loads without leukoreport.
"""

from __future__ import annotations

from dataclasses import dataclass

from fasttransform import Transform

from leukoreport.base.errors import LeukoError

__all__ = ["LOG_ADJUST", "METHODS", "RGB_FROM_HED", "StainAugmentation", "StainJitter", "hed_jitter", "hed_matrices",
           "hed_to_rgb", "hsv_jitter", "jitter", "rgb_to_hed", "stain_transforms", "strip_leukoreport"]

METHODS = ("none", "hed", "hsv")
# skimage.color.rgb_from_hed (Ruifrok & Johnston 2001): rows are the RGB optical densities of H, E and DAB
RGB_FROM_HED = ((0.65, 0.70, 0.29), (0.07, 0.99, 0.11), (0.27, 0.57, 0.78))
LOG_ADJUST = -13.815510557964274  # ln(1e-6): skimage's optical-density unit and floor of the RGB values


@dataclass
class StainAugmentation:
    """Config key ``stain_augmentation``: ``method`` none | hed | hsv and its ``strength`` σ in [0, 1]."""

    method: str
    strength: float

    def __post_init__(self):
        if self.method not in METHODS:
            raise LeukoError(f"config key stain_augmentation.method: '{self.method}' is not one of "
                             f"{', '.join(METHODS)}")
        if not 0 <= self.strength <= 1:
            raise LeukoError(f"config key stain_augmentation.strength: {self.strength} is not in [0, 1]")

    @property
    def active(self) -> bool:
        """Whether the recipe changes at all (``none`` or strength 0 keep the paper's recipe)."""
        return self.method != "none" and self.strength > 0


def hed_matrices(device=None) -> tuple:
    """``(rgb_from_hed, hed_from_rgb)`` as float32 tensors on ``device`` (one host-to-device copy: reuse them)."""
    import torch

    rgb_from_hed = torch.tensor(RGB_FROM_HED, dtype=torch.float64)
    return rgb_from_hed.to(device, torch.float32), torch.linalg.inv(rgb_from_hed).to(device, torch.float32)


def rgb_to_hed(x, matrices: tuple | None = None):
    """Batch ``(B, 3, H, W)`` in [0, 1] to HED stain densities, skimage's ``rgb2hed`` without its clip at 0."""
    import torch

    _, hed_from_rgb = matrices or hed_matrices(x.device)
    density = torch.log(x.clamp(min=1e-6)) / LOG_ADJUST
    return torch.einsum("bchw,cd->bdhw", density, hed_from_rgb)


def hed_to_rgb(stains, matrices: tuple | None = None):
    """Inverse of ``rgb_to_hed`` (skimage's ``hed2rgb``), clipped to [0, 1]."""
    import torch

    rgb_from_hed, _ = matrices or hed_matrices(stains.device)
    return torch.exp(torch.einsum("bdhw,dc->bchw", stains * LOG_ADJUST, rgb_from_hed)).clamp(0, 1)


def _uniform(n: int, low: float, high: float, like):
    """``n x 3`` draws of U(low, high) from torch's generator on the device of ``like``."""
    import torch

    return low + (high - low) * torch.rand(n, 3, device=like.device, dtype=like.dtype)


def hed_jitter(x, strength: float, matrices: tuple | None = None):
    """Per image and stain: densities scaled by U(1-σ, 1+σ) and shifted by U(-σ, σ), back to RGB in [0, 1]."""
    matrices = matrices or hed_matrices(x.device)
    scale = _uniform(len(x), 1 - strength, 1 + strength, x)
    shift = _uniform(len(x), -strength, strength, x)
    return hed_to_rgb(rgb_to_hed(x, matrices) * scale[:, :, None, None] + shift[:, :, None, None], matrices)


def hsv_jitter(x, strength: float):
    """Per image: hue turned by U(-σ, σ) of the circle, saturation and value scaled by U(1-σ, 1+σ)."""
    import torch
    from fastai.vision.augment import hsv2rgb, rgb2hsv

    turn = _uniform(len(x), -strength, strength, x)[:, 0, None, None]
    scale = _uniform(len(x), 1 - strength, 1 + strength, x)[:, 1:, None, None]
    h, s, v = rgb2hsv(x.clamp(0, 1)).unbind(1)
    h = torch.remainder(h + turn, 1.0)
    s = (s * scale[:, 0]).clamp(0, 1)
    v = (v * scale[:, 1]).clamp(0, 1)
    return hsv2rgb(torch.stack((h, s, v), dim=1)).clamp(0, 1)


def jitter(x, method: str, strength: float, matrices: tuple | None = None):
    """``method``'s colour jitter of a float batch ``(B, 3, H, W)`` in [0, 1]; ``none`` or σ = 0: ``x`` itself.

    ``matrices``: ``hed_matrices`` on the batch's device (built here when not given).
    """
    import torch

    if method == "none" or strength == 0:
        return x
    plain = x.as_subclass(torch.Tensor)
    return hed_jitter(plain, strength, matrices) if method == "hed" else hsv_jitter(plain, strength)


class StainJitter(Transform):
    """fastai batch transform: ``jitter`` of the images (labels untouched), on the training split only."""

    split_idx, order = 0, 50  # after aug_transforms (orders 30, 40), before Normalize (99)

    def __init__(self, method: str = "hed", strength: float = 0.05):
        super().__init__()
        StainAugmentation(method, strength)
        self.method, self.strength = method, float(strength)
        self.matrices: dict = {}  # device -> hed_matrices: no host-to-device copy (and host sync) per batch

    def encodes(self, x):
        from fastai.torch_core import TensorImage

        if not isinstance(x, TensorImage):
            return x
        if self.method == "hed" and x.device not in self.matrices:
            self.matrices[x.device] = hed_matrices(x.device)
        return TensorImage(jitter(x, self.method, self.strength, self.matrices.get(x.device)))


def stain_transforms(cfg: StainAugmentation) -> list:
    """The batch transforms of ``cfg``: none for ``none`` or strength 0 (the paper's recipe, bit for bit)."""
    return [StainJitter(cfg.method, cfg.strength)] if cfg.active else []


def strip_leukoreport(dls) -> None:
    """Remove every leukoreport transform from the pipelines of ``dls`` (before export: fastai objects only)."""
    for dl in dls.loaders:
        for name in ("after_item", "before_batch", "after_batch"):
            pipe = getattr(dl, name, None)
            if pipe is not None and hasattr(pipe, "fs"):
                pipe.fs = pipe.fs.filter(lambda f: not type(f).__module__.startswith("leukoreport"))
