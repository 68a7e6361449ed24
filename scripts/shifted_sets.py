"""Build external sets from other labs' conditions: shifted copies of embedded images a run did not train on.

Usage: python scripts/shifted_sets.py OUT [--data data/leukocytes] [--exclude results/splits/42/split.csv]
           [--per-class 40] [--skip 0] [--kinds plain,stain,blur,scale,bright]   (also: dye)

Takes, per class, the first ``--per-class`` images (sorted by name, after ``--skip``) that are not listed in the
``--exclude`` split, and writes one ImageFolder per kind under OUT/<kind>/<class>/: ``plain`` (unchanged copies),
``stain`` (haematoxylin and eosin densities scaled, as another lab's staining), ``blur`` (Gaussian, radius 2),
``scale`` (cell shrunk to 60% and centred on a background-coloured canvas, as another magnification) and ``bright``
(brightness ×1.35, contrast ×0.7); on request ``dye`` (the same stain densities drawn with other dyes' colours).
Deterministic; prints the folders for the config's ``external:`` key.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageEnhance, ImageFilter
from skimage.color import combine_stains, hed2rgb, rgb2hed, rgb_from_hdx

DEFAULT_KINDS = ("plain", "stain", "blur", "scale", "bright")
KINDS = (*DEFAULT_KINDS, "dye")


def stain(img: Image.Image) -> Image.Image:
    """Haematoxylin ×1.5, eosin ×0.6 in skimage's HED space."""
    hed = rgb2hed(np.asarray(img.convert("RGB"), dtype=np.float64) / 255.0)
    hed[..., 0] *= 1.5
    hed[..., 1] *= 0.6
    return Image.fromarray((np.clip(hed2rgb(hed), 0, 1) * 255).round().astype(np.uint8))


def dye(img: Image.Image) -> Image.Image:
    """The image's skimage HED densities drawn with the haematoxylin-DAB stain vectors (``rgb_from_hdx``): the same
    stain amounts in other dyes' colours, a shift of the stain vectors themselves (what Macenko estimates)."""
    hed = rgb2hed(np.asarray(img.convert("RGB"), dtype=np.float64) / 255.0)
    return Image.fromarray((np.clip(combine_stains(hed, rgb_from_hdx), 0, 1) * 255).round().astype(np.uint8))


def scale(img: Image.Image, factor: float = 0.6) -> Image.Image:
    """The image shrunk by ``factor`` and centred on a canvas of its own size filled with its median colour."""
    rgb = img.convert("RGB")
    small = rgb.resize((max(1, round(rgb.width * factor)), max(1, round(rgb.height * factor))), Image.BILINEAR)
    fill = tuple(int(v) for v in np.median(np.asarray(rgb).reshape(-1, 3), axis=0))
    canvas = Image.new("RGB", rgb.size, fill)
    canvas.paste(small, ((rgb.width - small.width) // 2, (rgb.height - small.height) // 2))
    return canvas


def shifted(img: Image.Image, kind: str) -> Image.Image:
    """``img`` under the condition ``kind``."""
    rgb = img.convert("RGB")
    if kind == "plain":
        return rgb
    if kind == "stain":
        return stain(rgb)
    if kind == "dye":
        return dye(rgb)
    if kind == "blur":
        return rgb.filter(ImageFilter.GaussianBlur(2))
    if kind == "scale":
        return scale(rgb)
    if kind == "bright":
        return ImageEnhance.Contrast(ImageEnhance.Brightness(rgb).enhance(1.35)).enhance(0.7)
    raise SystemExit(f"error: --kinds: unknown kind {kind!r} (expected {', '.join(KINDS)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--data", type=Path, default=Path("data/leukocytes"))
    parser.add_argument("--exclude", type=Path, help="a split.csv whose images are left out")
    parser.add_argument("--per-class", type=int, default=40)
    parser.add_argument("--skip", type=int, default=0, help="unseen images to skip per class first")
    parser.add_argument("--kinds", default=",".join(DEFAULT_KINDS))
    args = parser.parse_args()
    kinds = [k for k in args.kinds.split(",") if k]
    excluded = set()
    if args.exclude:
        excluded = {Path(p).name for p in pd.read_csv(args.exclude)["path"]}
    for class_dir in sorted(p for p in args.data.iterdir() if p.is_dir()):
        files = [f for f in sorted(class_dir.iterdir()) if f.is_file() and f.name not in excluded]
        chosen = files[args.skip: args.skip + args.per_class]
        for kind in kinds:
            target = args.out / kind / class_dir.name
            target.mkdir(parents=True, exist_ok=True)
            for f in chosen:
                with Image.open(f) as img:
                    shifted(img, kind).save(target / f"{f.stem}.png")
    for kind in kinds:
        print(f"  {kind}: {(args.out / kind).as_posix()}")


if __name__ == "__main__":
    main()
