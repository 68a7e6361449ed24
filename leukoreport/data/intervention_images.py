"""The transformed images of the evaluation-time interventions, written once per split and external set (they depend
only on the split's normalisation reference and the set's images) and read by every run: Reinhard, Macenko, scale
matching, and scale matching then Reinhard (what ``combined`` predicts after AdaBN), each under its own folder."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from leukoreport.base.errors import LeukoError
from leukoreport.data.colour_normalisation import NormalisationReference, fit_reinhard, normalise, read_image
from leukoreport.data.scale_matching import ScaleMatch, cell_share, match_scale, scale_factor

__all__ = ["INDEX_COLUMNS", "TRANSFORMS", "PreparedImages", "downsample", "prepare_images", "read_prepared",
           "transform_key"]

# transform -> (stain normalisation, whether rescaled by the set's scale factor)
TRANSFORMS = {"reinhard": ("reinhard", False), "macenko": ("macenko", False), "scale": ("none", True),
              "scale_reinhard": ("reinhard", True)}
INDEX_COLUMNS = ["transform", "index", "source", "path"]


def downsample(rgb: np.ndarray, side: int | None) -> np.ndarray:
    """``rgb`` resized (Lanczos, aspect ratio kept) so that its shorter side is ``side`` pixels; unchanged when
    ``side`` is None or the image is already no larger (never upsampled)."""
    height, width = rgb.shape[:2]
    short = min(height, width)
    if side is None or short <= side:
        return rgb
    size = (max(1, round(width * side / short)), max(1, round(height * side / short)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.LANCZOS))


def transform_key(stain_normalisation: str, rescaled: bool) -> str | None:
    """The TRANSFORMS name of a stain normalisation (``none``, ``reinhard``, ``macenko``) with or without rescaling;
    None when nothing changes the images or no transform was prepared for it (scale matching then Macenko)."""
    for key, spec in TRANSFORMS.items():
        if spec == (stain_normalisation, rescaled):
            return key
    return None


@dataclass
class PreparedImages:
    """A set's transformed images (``index``: transform, index, source path, written path) and what they cost."""

    index: pd.DataFrame
    match: ScaleMatch
    work_side: int | None
    seconds: dict[str, float]  # per transform (scale matching's cell-share pass counted in scale*), whole set
    n_unnormalised: int  # images Macenko left unchanged
    scale_seconds: float = 0.0

    def paths(self, key: str, sources: Sequence[str]) -> list[str]:
        """The written images of transform ``key`` in the order of ``sources``; LeukoError when one is missing."""
        rows = self.index[self.index["transform"] == key].set_index("source")["path"]
        missing = [s for s in sources if s not in rows.index]
        if missing:
            raise LeukoError(f"intervention images: transform {key!r} has no image for {missing[0]}")
        return [str(rows[s]) for s in sources]

    def summary(self) -> dict:
        """The JSON form (intervention_images.json without the file paths)."""
        n = int((self.index["transform"] == next(iter(TRANSFORMS))).sum()) if len(self.index) else 0
        return {"n_images": n, "work_side": self.work_side, "scale_factor": self.match.factor,
                "scale": self.match.to_dict(),
                "scale_seconds": round(self.scale_seconds, 4),
                "seconds": {k: round(v, 4) for k, v in self.seconds.items()},
                "seconds_per_image": {k: round(v / max(n, 1), 6) for k, v in self.seconds.items()},
                "n_unnormalised": self.n_unnormalised}


def prepare_images(paths: Sequence[str], reference: NormalisationReference, folder: str | Path,
                   work_side: int | None, tolerance: float = 0.1,
                   progress: Callable[[str], None] = print) -> PreparedImages:
    """Every transform of the images at ``paths`` written as PNG (compress_level 1) under ``folder/<transform>/``:
    each image first downsampled to ``work_side`` (``downsample``), rescaled by the set's scale factor (from the
    full-size images' cell shares, as the reference's) where the transform rescales, then stain-normalised (Reinhard
    from the set's own mean LAB statistics of the images so prepared; Macenko per image, unchanged where it fails)."""
    folder, paths = Path(folder), [str(p) for p in paths]
    if not paths:
        raise LeukoError("intervention images: the set has no images")
    start = time.perf_counter()
    full = [read_image(p) for p in paths]
    match = scale_factor(reference.cell_share, [cell_share(rgb) for rgb in full], tolerance)
    scale_seconds = time.perf_counter() - start
    small = [downsample(rgb, work_side) for rgb in full]
    del full
    rows, seconds, failed = [], {}, 0
    for key, (stain, rescaled) in TRANSFORMS.items():
        if stain == "macenko" and reference.macenko is None:
            continue
        begin = time.perf_counter()
        images = [match_scale(rgb, match.factor) for rgb in small] if rescaled else small
        source = fit_reinhard(images) if stain == "reinhard" else None
        (folder / key).mkdir(parents=True, exist_ok=True)
        for i, (path, rgb) in enumerate(zip(paths, images)):
            if stain != "none":
                out = normalise(rgb, stain, reference, source)
                if out is None:
                    failed += stain == "macenko"
                    out = rgb
                rgb = out
            target = folder / key / f"{i:06d}.png"
            Image.fromarray(rgb).save(target, compress_level=1)
            rows.append((key, i, path, str(target)))
        seconds[key] = time.perf_counter() - begin + (scale_seconds if rescaled else 0.0)
        progress(f"{key}: {len(paths)} images in {seconds[key]:.1f} s")
    index = pd.DataFrame(rows, columns=INDEX_COLUMNS)
    return PreparedImages(index, match, work_side, seconds, failed, scale_seconds)


def read_prepared(index_csv: str | Path, summary_json: str | Path) -> PreparedImages:
    """A prepared set from its index CSV and JSON (as written by workflow/scripts/intervention_images.py); relative
    image paths are taken from the index's folder; LeukoError naming the file when malformed."""
    index_csv, summary_json = Path(index_csv), Path(summary_json)
    try:
        index = pd.read_csv(index_csv, dtype={"source": str, "path": str, "transform": str})
        data = json.loads(summary_json.read_text())
    except (OSError, ValueError) as exc:
        raise LeukoError(f"{index_csv.as_posix()}: cannot read intervention images ({exc})") from None
    missing = sorted(set(INDEX_COLUMNS) - set(index.columns))
    if missing:
        raise LeukoError(f"{index_csv.as_posix()}: column {missing[0]!r} missing")
    index["path"] = [p if Path(p).is_absolute() else str(index_csv.parent / p) for p in index["path"]]
    try:
        seconds = {k: float(v) for k, v in data["seconds"].items()}
        prepared = PreparedImages(index, ScaleMatch.from_dict(data["scale"]), data["work_side"], seconds,
                                  int(data["n_unnormalised"]), float(data["scale_seconds"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise LeukoError(f"{summary_json.as_posix()}: key {exc} missing or malformed") from None
    return prepared
