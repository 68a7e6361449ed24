"""The Grad-CAM gallery (maps from inference.saliency): each image beside its saliency overlay."""

from __future__ import annotations

import math
import numbers
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from PIL import Image

from leukoreport.base.errors import LeukoError
from leukoreport.report.figures import style
from leukoreport.report.figures.style import STYLE, THUMB_PX, short_name

__all__ = ["CAPTION_PT", "overlay", "plot_saliency_gallery"]

CAPTION_PT = 11.5  # about 7.5 pt on a 10 in page scaled to A4's text width


def overlay(path, cam: np.ndarray, alpha: float = 0.45) -> Image.Image:
    """The RGB image at `path` with a jet colour map of `cam` blended on top at opacity `alpha`."""
    try:
        with Image.open(path) as img:
            rgb = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    except (OSError, ValueError) as exc:
        raise LeukoError(f"{path}: cannot open image: {exc}") from None
    if cam.shape != rgb.shape[:2]:
        raise LeukoError(f"{path}: map of shape {cam.shape} for an image of {rgb.shape[1]}x{rgb.shape[0]}")
    heat = matplotlib.colormaps["jet"](np.clip(cam, 0.0, 1.0))[..., :3]
    blend = (1.0 - alpha) * rgb + alpha * heat
    return Image.fromarray(np.uint8(np.round(np.clip(blend, 0.0, 1.0) * 255)))


def _caption(row: pd.Series, limit: int) -> str:
    """'true: X · pred: Y (p%)' of one row, on two lines (at the dot) when longer than `limit` characters."""
    p = float(row[f"prob_{row['prediction']}"])
    true, pred = f"true: {row['label']}", f"pred: {row['prediction']} ({p:.0%})"
    return f"{true} \u00b7 {pred}" if len(true) + len(pred) + 3 <= limit else f"{true} \u00b7\n{pred}"


def _name_line(row: pd.Series, has_why: bool) -> str:
    """The shortened file name, after the ``why`` of the row when there is one."""
    name = short_name(row["path"], 28)
    return f"{row['why']} \u00b7 {name}" if has_why and pd.notna(row["why"]) else name


def plot_saliency_gallery(rows: pd.DataFrame, maps: list[np.ndarray], out, root=".", title: str = "",
                          columns: int = 3) -> None:
    """One page: per row the plain thumbnail and its Grad-CAM overlay side by side, captioned with true
    label, prediction and its probability, the file name below; `columns` pairs per line."""
    missing = [c for c in ("path", "label", "prediction") if c not in rows.columns]
    if missing:
        raise LeukoError(f"saliency rows: missing column(s) {missing}")
    if len(rows) != len(maps):
        raise LeukoError(f"saliency gallery: {len(rows)} rows but {len(maps)} maps")
    if isinstance(columns, bool) or not isinstance(columns, numbers.Integral) or columns < 1:
        raise LeukoError(f"saliency gallery: columns must be a positive integer, got {columns!r}")
    for c in set(rows["prediction"]):
        if f"prob_{c}" not in rows.columns:
            raise LeukoError(f"saliency rows: missing column 'prob_{c}'")
    root = Path(root)
    with plt.rc_context(STYLE):
        if rows.empty:
            fig = plt.figure(figsize=(4.5, 1.0))
            fig.text(0.5, 0.5, "No images to explain", ha="center", va="center", fontsize=13)
            style.save_figure(fig, out)
            return
        ncols = min(columns, len(rows))
        nrows = math.ceil(len(rows) / ncols)
        pair_w = 10.0 / ncols if ncols > 1 else 4.0
        limit = int(pair_w * 72 / (0.56 * CAPTION_PT))  # characters of a caption line that fit
        captions = [_caption(row, limit) for _, row in rows.iterrows()]
        lines = max(c.count("\n") + 1 for c in captions)
        pair_h = pair_w / 2 + 0.3 + 0.22 * lines
        fig = plt.figure(figsize=(pair_w * ncols, pair_h * nrows + (0.45 if title else 0.1)),
                         layout="constrained")
        subfigs = np.atleast_1d(fig.subfigures(nrows, ncols, wspace=0.03, hspace=0.03)).reshape(-1)
        for sub in subfigs[len(rows):]:
            sub.set_facecolor("none")
        has_why = "why" in rows.columns
        for sub, (_, row), cam, caption in zip(subfigs, rows.iterrows(), maps, captions):
            path = root / str(row["path"])
            shown = overlay(path, cam)
            shown.thumbnail((THUMB_PX, THUMB_PX))
            right = row["label"] == row["prediction"]
            sub.set_facecolor("0.94" if right else "#f6e4e4")
            for ax, image in zip(sub.subplots(1, 2, gridspec_kw={"wspace": 0.03}), (style.thumbnail(path), shown)):
                ax.axis("off")
                ax.imshow(image)
            sub.suptitle(caption, fontsize=CAPTION_PT, color="black" if right else "darkred")
            sub.supxlabel(_name_line(row, has_why), fontsize=CAPTION_PT - 1, color="0.3")
        if title:
            fig.suptitle(title, fontsize=14)
        style.save_figure(fig, out)
