"""Colour and stain normalisation of images to the training images: Reinhard (per-channel mean and SD matching in
CIE LAB) and Macenko (torchstain's numpy backend), with the reference statistics fitted on training images only."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from skimage.color import lab2rgb, rgb2lab

from leukoreport.base.errors import LeukoError
from leukoreport.data.scale_matching import cell_share

__all__ = ["BACKGROUND_SHARE", "MACENKO_IO", "MACENKO_PIXELS", "STAIN_METHODS", "MacenkoReference",
           "NormalisationReference", "ReinhardReference", "background", "fit_macenko", "fit_reference", "fit_reinhard",
           "lab_statistics", "macenko", "normalise", "read_image", "read_reference", "reinhard", "to_uint8"]

STAIN_METHODS = ("reinhard", "macenko")
MACENKO_PIXELS = 4096  # pixels drawn per training image for the Macenko reference (seeded)
MACENKO_IO = 240.0  # torchstain's transmitted-light intensity: each image is first scaled so its background is this
BACKGROUND_SHARE = 0.10  # the brightest share of an image's pixels (by luma) taken as its background
_EPS = 1e-6


def read_image(path: str | Path) -> np.ndarray:
    """The image decoded as uint8 RGB; LeukoError naming the file when unreadable."""
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise LeukoError(f"{Path(path).as_posix()}: cannot read image ({exc})") from None


def to_uint8(rgb01: np.ndarray) -> np.ndarray:
    """A float RGB image in [0, 1] as uint8 (clipped, rounded)."""
    return (np.clip(rgb01, 0.0, 1.0) * 255.0).round().astype(np.uint8)


def lab_statistics(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The image in CIE LAB (skimage ``rgb2lab`` of v / 255) and its per-channel mean and population SD."""
    lab = rgb2lab(np.asarray(rgb, dtype=np.float64) / 255.0)
    flat = lab.reshape(-1, 3)
    return lab, flat.mean(axis=0), flat.std(axis=0)


@dataclass(frozen=True)
class ReinhardReference:
    """Target LAB channel means and SDs: the averages over the training images of each image's own."""

    mean: tuple[float, float, float]
    sd: tuple[float, float, float]


@dataclass(frozen=True)
class MacenkoReference:
    """Target stain matrix (RGB optical density x [haematoxylin, eosin]), 99th-percentile concentrations and
    background colour (median over the training images of ``background``)."""

    stain_matrix: tuple[tuple[float, float], ...]
    max_concentrations: tuple[float, float]
    background: tuple[float, float, float]


def reinhard(rgb: np.ndarray, ref: ReinhardReference, source: ReinhardReference | None = None) -> np.ndarray:
    """Reinhard et al. (2001): every LAB channel shifted and scaled from the ``source`` mean and SD (default: the
    image's own) to the reference's, back to uint8 RGB (``lab2rgb``, clipped)."""
    lab, mean, sd = lab_statistics(rgb)
    if source is not None:
        mean, sd = np.asarray(source.mean), np.asarray(source.sd)
    out = (lab - mean) / np.maximum(sd, _EPS) * np.asarray(ref.sd) + np.asarray(ref.mean)
    with warnings.catch_warnings():  # out-of-gamut colours are clipped (skimage warns about negative Z values)
        warnings.simplefilter("ignore")
        return to_uint8(lab2rgb(out))


def _macenko_normaliser(ref: MacenkoReference | None = None):
    """torchstain's numpy Macenko normaliser, with ``ref`` as its target when given."""
    from torchstain.numpy.normalizers import NumpyMacenkoNormalizer

    norm = NumpyMacenkoNormalizer()
    if ref is not None:
        norm.HERef = np.asarray(ref.stain_matrix, dtype=np.float64)
        norm.maxCRef = np.asarray(ref.max_concentrations, dtype=np.float64)
    return norm


def background(rgb: np.ndarray) -> np.ndarray:
    """The image's background colour: per channel, the median of its brightest ``BACKGROUND_SHARE`` of pixels by
    luma (at least 1), the transmitted light that Macenko's optical densities are relative to."""
    flat = np.asarray(rgb, dtype=np.float64).reshape(-1, 3)
    luma = flat @ np.array([0.299, 0.587, 0.114])
    bright = flat[luma >= np.quantile(luma, 1.0 - BACKGROUND_SHARE)]
    return np.maximum(np.median(bright, axis=0), 1.0)


def _to_white(rgb: np.ndarray) -> np.ndarray:
    """``rgb`` scaled per channel so that its background becomes MACENKO_IO grey (torchstain's scalar Io)."""
    return np.asarray(rgb, dtype=np.float64) * (MACENKO_IO / background(rgb))


def macenko(rgb: np.ndarray, ref: MacenkoReference) -> np.ndarray | None:
    """Macenko et al. (2009) through torchstain, with each image's own background as its light intensity: the
    image's stains re-expressed with the reference stain matrix and concentrations on the training background
    colour; None when its stains cannot be estimated (too few stained pixels). torchstain assumes one grey Io for
    every channel: an image is scaled per channel to that grey first and the result scaled to the reference's
    background after (otherwise a tinted background, as in the embedded images, turns grey)."""
    try:
        with np.errstate(all="ignore"):
            out, _, _ = _macenko_normaliser(ref).normalize(I=_to_white(rgb), Io=MACENKO_IO, stains=False)
    except (np.linalg.LinAlgError, ValueError, IndexError):
        return None
    out = out.astype(np.float64) * (np.asarray(ref.background) / MACENKO_IO)
    return np.clip(out, 0.0, 255.0).round().astype(np.uint8) if np.isfinite(out).all() else None


def normalise(rgb: np.ndarray, method: str, reference: NormalisationReference,
              source: ReinhardReference | None = None) -> np.ndarray | None:
    """``rgb`` normalised by ``method`` (``reinhard`` from the ``source`` statistics, default the image's own, or
    ``macenko``, per image); None where Macenko fails on the image."""
    if method == "reinhard":
        return reinhard(rgb, reference.reinhard, source)
    if method == "macenko":
        if reference.macenko is None:
            raise LeukoError("stain_normalisation macenko: the reference has no Macenko stain matrix")
        return macenko(rgb, reference.macenko)
    raise LeukoError(f"stain_normalisation: unknown method {method!r} (expected {', '.join(STAIN_METHODS)})")


def fit_reinhard(images: Iterable[np.ndarray]) -> ReinhardReference:
    """Averages of the images' own LAB channel means and SDs (the training reference, or a set's statistics)."""
    stats = [lab_statistics(rgb)[1:] for rgb in images]
    mean = np.mean([m for m, _ in stats], axis=0)
    sd = np.mean([s for _, s in stats], axis=0)
    return ReinhardReference(tuple(float(v) for v in mean), tuple(float(v) for v in sd))


def fit_macenko(images: Sequence[np.ndarray], seed: int = 0, pixels: int = MACENKO_PIXELS) -> MacenkoReference:
    """torchstain's Macenko fit on ``pixels`` pixels drawn from every training image (seeded) after scaling it to a
    grey background (as ``macenko`` does), pooled; the reference background is the median of the images'."""
    rng = np.random.default_rng(seed)
    pooled, backgrounds = [], []
    for rgb in images:
        backgrounds.append(background(rgb))
        flat = _to_white(rgb).reshape(-1, 3)
        pooled.append(flat[rng.choice(len(flat), size=min(pixels, len(flat)), replace=False)])
    norm = _macenko_normaliser()
    with np.errstate(all="ignore"):
        norm.fit(np.concatenate(pooled)[:, None, :], Io=MACENKO_IO)
    he, max_c = np.asarray(norm.HERef, dtype=np.float64), np.asarray(norm.maxCRef, dtype=np.float64)
    if not (np.isfinite(he).all() and np.isfinite(max_c).all()):
        raise LeukoError("Macenko reference: the stain matrix of the training images is not finite")
    return MacenkoReference(tuple(tuple(float(v) for v in row) for row in he), tuple(float(v) for v in max_c),
                            tuple(float(v) for v in np.median(backgrounds, axis=0)))


@dataclass(frozen=True)
class NormalisationReference:
    """Every statistic the evaluation-time interventions take from the training images."""

    reinhard: ReinhardReference
    macenko: MacenkoReference | None
    cell_share: float  # median over the sampled training images (leukoreport.data.scale_matching.cell_share)
    n_images: int
    seed: int
    macenko_note: str = ""

    def to_dict(self) -> dict:
        """The JSON form (normalisation_reference.json)."""
        out = asdict(self)
        out["methods"] = {
            "reinhard": "mean over the training images of each image's CIE LAB channel means and population SDs "
                        "(a set is mapped from its own statistics, computed alike)",
            "macenko": f"torchstain {_torchstain_version()} NumpyMacenkoNormalizer.fit on {MACENKO_PIXELS} seeded "
                       "pixels per training image, pooled (alpha=1, beta=0.15); every image first scaled per channel "
                       f"so that its background (median of its brightest {BACKGROUND_SHARE:.0%} of pixels by luma) "
                       f"is {MACENKO_IO:.0f} grey (torchstain's Io), results scaled to the training background",
            "cell_share": "median over the training images of the share of pixels whose haematoxylin density "
                          "(skimage rgb2hed) exceeds the image's Otsu threshold",
        }
        return out


def _torchstain_version() -> str:
    """The installed torchstain's version (its ``__version__`` lags the release)."""
    from importlib.metadata import version

    return version("torchstain")


def fit_reference(paths: Sequence[str | Path], seed: int = 0) -> NormalisationReference:
    """Fit every reference statistic on the images at ``paths`` (training images only)."""
    if not paths:
        raise LeukoError("normalisation reference: no training images")
    images = [read_image(p) for p in paths]
    try:
        mac, note = fit_macenko(images, seed), ""
    except (LeukoError, np.linalg.LinAlgError, ValueError, IndexError) as exc:
        mac, note = None, f"Macenko not fitted: {exc}"
    share = float(np.median([cell_share(rgb) for rgb in images]))
    return NormalisationReference(fit_reinhard(images), mac, share, len(images), seed, note)


def read_reference(path: str | Path) -> NormalisationReference:
    """A normalisation_reference.json; LeukoError naming the file and key when it is malformed."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise LeukoError(f"{path.as_posix()}: cannot read normalisation reference ({exc})") from None
    try:
        rh = ReinhardReference(tuple(map(float, data["reinhard"]["mean"])), tuple(map(float, data["reinhard"]["sd"])))
        mac = data["macenko"]
        mac = None if mac is None else MacenkoReference(
            tuple(tuple(map(float, row)) for row in mac["stain_matrix"]), tuple(map(float, mac["max_concentrations"])),
            tuple(map(float, mac["background"])))
        ref = NormalisationReference(rh, mac, float(data["cell_share"]), int(data["n_images"]), int(data["seed"]),
                                     str(data.get("macenko_note", "")))
    except (KeyError, TypeError, ValueError) as exc:
        raise LeukoError(f"{path.as_posix()}: key {exc} missing or malformed in the normalisation reference") from None
    bad_macenko = mac is not None and (np.shape(mac.stain_matrix) != (3, 2) or len(mac.background) != 3)
    if len(rh.mean) != 3 or len(rh.sd) != 3 or bad_macenko:
        raise LeukoError(f"{path.as_posix()}: key reinhard or macenko has the wrong shape")
    return ref
