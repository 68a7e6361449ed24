"""Per-image statistics (colour, brightness, sharpness, size, stain density) and their shift
between the training images and another image set."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from scipy import stats
from skimage.color import rgb2hed

from leukoreport.base.errors import LeukoError

__all__ = ["DEFAULT_PLOTTED", "LABELS", "LUMA", "STATISTICS", "check_statistics_frame", "finite_values",
           "image_statistics", "shift_table", "statistics_table"]

STATISTICS: list[str] = ["mean_r", "mean_g", "mean_b", "sd_r", "sd_g", "sd_b", "brightness",
                         "contrast", "saturation", "sharpness", "width", "height", "aspect",
                         "od_hematoxylin", "od_eosin"]

LABELS: dict[str, str] = {
    "mean_r": "mean red", "mean_g": "mean green", "mean_b": "mean blue",
    "sd_r": "SD of red", "sd_g": "SD of green", "sd_b": "SD of blue",
    "brightness": "brightness (mean luma)", "contrast": "contrast (SD of luma)",
    "saturation": "saturation (mean HSV S)", "sharpness": "sharpness (Laplacian variance)",
    "width": "width (px)", "height": "height (px)", "aspect": "aspect (width / height)",
    "od_hematoxylin": "haematoxylin OD", "od_eosin": "eosin OD",
}

DEFAULT_PLOTTED: list[str] = ["brightness", "contrast", "saturation", "sharpness",
                              "od_hematoxylin", "od_eosin", "mean_r", "mean_b", "aspect"]

LUMA = np.array([0.299, 0.587, 0.114])


def _read_rgb(path: str | Path, max_side: int) -> tuple[np.ndarray, int, int]:
    """The image as float64 RGB in [0, 1] (thumbnailed to `max_side`) and its original size."""
    try:
        with Image.open(path) as img:
            rgb = img.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise LeukoError(f"{path}: cannot read image ({reason or type(exc).__name__})") from None
    width, height = rgb.size
    if max(width, height) > max_side:
        rgb.thumbnail((max_side, max_side), Image.BILINEAR)
    return np.asarray(rgb, dtype=np.float64) / 255.0, width, height


def image_statistics(path: str | Path, max_side: int = 1024) -> dict:
    """The STATISTICS of one image decoded by PIL as RGB float64 in [0, 1] (population SDs).

    Images with a side over `max_side` are first shrunk with PIL ``thumbnail((max_side, max_side),
    BILINEAR)`` for every statistic except width, height and aspect, which are of the original.
    Sharpness is the variance of the 4-neighbour Laplacian of the luma Y (in [0, 1]) over the valid
    region (no padding: the 3 x 3 kernel applied by slicing); NaN for images under 3 x 3 px.
    """
    rgb, width, height = _read_rgb(path, max_side)
    r, g, b = (np.ascontiguousarray(rgb[..., i]) for i in range(3))  # planes: fast contiguous reductions
    y = LUMA[0] * r + LUMA[1] * g + LUMA[2] * b
    top = np.maximum(np.maximum(r, g), b)
    spread = top - np.minimum(np.minimum(r, g), b)
    saturation = np.divide(spread, top, out=np.zeros_like(top), where=top > 0)
    if min(y.shape) >= 3:
        lap = y[:-2, 1:-1] + y[2:, 1:-1] + y[1:-1, :-2] + y[1:-1, 2:] - 4.0 * y[1:-1, 1:-1]
        sharpness = float(np.var(lap))
    else:
        sharpness = math.nan
    hed = rgb2hed(rgb)
    planes = (r, g, b)
    means = [float(p.mean()) for p in planes]
    sds = [float(p.std()) for p in planes]
    return {"mean_r": means[0], "mean_g": means[1], "mean_b": means[2],
            "sd_r": sds[0], "sd_g": sds[1], "sd_b": sds[2],
            "brightness": float(y.mean()), "contrast": float(y.std()),
            "saturation": float(saturation.mean()), "sharpness": sharpness,
            "width": int(width), "height": int(height), "aspect": width / height,
            "od_hematoxylin": float(hed[..., 0].mean()), "od_eosin": float(hed[..., 1].mean())}


def statistics_table(paths, root: str | Path = ".", max_side: int = 1024) -> pd.DataFrame:
    """One row per image path (relative to `root`): column ``path`` as given, then STATISTICS."""
    root = Path(root)
    rows = [{"path": p, **image_statistics(root / p, max_side=max_side)} for p in paths]
    return pd.DataFrame(rows, columns=["path", *STATISTICS])


def check_statistics_frame(df: pd.DataFrame, where: str, columns: list[str]) -> None:
    """LeukoError when `df` is not a frame with `columns` and at least one row."""
    if not isinstance(df, pd.DataFrame):
        raise LeukoError(f"{where}: must be a statistics_table DataFrame")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise LeukoError(f"{where}: missing column(s) {missing}")
    if df.empty:
        raise LeukoError(f"{where}: frame is empty (no images)")


def finite_values(df: pd.DataFrame, column: str) -> np.ndarray:
    """The finite numeric values of one column as float64."""
    v = pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=np.float64)
    return v[np.isfinite(v)]


def shift_table(train: pd.DataFrame, other: pd.DataFrame) -> pd.DataFrame:
    """Per statistic: mean and population SD of both sets, Wasserstein-1 distance (also in units
    of the training SD, which ranks the statistics: sorted descending, NaN last) and the two-sample
    Kolmogorov-Smirnov statistic ``ks`` with its p-value ``ks_p``. Missing values are dropped."""
    check_statistics_frame(train, "shift_table: training frame", STATISTICS)
    check_statistics_frame(other, "shift_table: other frame", STATISTICS)
    rows = []
    for s in STATISTICS:
        a, b = finite_values(train, s), finite_values(other, s)
        row = {"statistic": s, "train_mean": math.nan, "train_sd": math.nan,
               "set_mean": math.nan, "set_sd": math.nan, "wasserstein": math.nan,
               "wasserstein_sd": math.nan, "ks": math.nan, "ks_p": math.nan}
        if a.size:
            row.update(train_mean=float(a.mean()), train_sd=float(a.std()))
        if b.size:
            row.update(set_mean=float(b.mean()), set_sd=float(b.std()))
        if a.size and b.size:
            w = float(stats.wasserstein_distance(a, b))
            ks = stats.ks_2samp(a, b)
            row.update(wasserstein=w, ks=float(ks.statistic), ks_p=float(ks.pvalue),
                       wasserstein_sd=w / row["train_sd"] if row["train_sd"] > 0 else math.nan)
        rows.append(row)
    table = pd.DataFrame(rows)
    return table.sort_values("wasserstein_sd", ascending=False, na_position="last",
                             kind="stable").reset_index(drop=True)
