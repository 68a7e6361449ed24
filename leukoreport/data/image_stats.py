"""Per-image statistics (colour, brightness, sharpness, size, stain density) and their shift
between the training images and another image set."""

from __future__ import annotations

import ctypes
import math
import platform
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from scipy import stats

from leukoreport.base.errors import LeukoError
from leukoreport.data.stain_density import hed_densities

__all__ = ["DEFAULT_PLOTTED", "LABELS", "LUMA", "STATISTICS", "check_statistics_frame", "finite_values",
           "image_statistics", "reuse_freed_memory", "separability", "shift_table", "statistics_table"]

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
_MIN_CHUNK = 16  # images per worker below which a process pool costs more than it saves
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)

# The value v / 255 of every 8-bit value v, in [0, 1] (the stain densities: leukoreport.data.stain_density).
_UNIT = np.arange(256, dtype=np.float64) / 255.0


def reuse_freed_memory() -> bool:
    """Let glibc's malloc keep freed blocks of up to 32 MiB in the heap instead of unmapping them (mallopt
    M_MMAP_THRESHOLD and M_TRIM_THRESHOLD): the per-pixel arrays of one image (about 12 MB at 360 px) then reuse
    the previous image's pages, where otherwise every array is mapped afresh and its pages faulted in and zeroed
    by the kernel (about 2,900 page faults per image, half the CPU time). Changes no value. Process-wide; False
    (nothing done) outside glibc."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(None)
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 256 << 20))
    except (OSError, AttributeError):
        return False


def _read_pixels(path: str | Path, max_side: int) -> tuple[np.ndarray, int, int]:
    """The image decoded once as uint8 RGB (thumbnailed to `max_side`) and its original size."""
    try:
        with Image.open(path) as img:
            rgb = img.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise LeukoError(f"{path}: cannot read image ({reason or type(exc).__name__})") from None
    width, height = rgb.size
    if max(width, height) > max_side:
        rgb.thumbnail((max_side, max_side), Image.BILINEAR)
    return np.asarray(rgb), width, height


def image_statistics(path: str | Path, max_side: int = 1024) -> dict:
    """The STATISTICS of one image decoded by PIL as RGB, each channel as v / 255 in [0, 1] (population SDs).

    Images with a side over `max_side` are first shrunk with PIL ``thumbnail((max_side, max_side),
    BILINEAR)`` for every statistic except width, height and aspect, which are of the original.
    Sharpness is the variance of the 4-neighbour Laplacian of the luma Y (in [0, 1]) over the valid
    region (no padding: the 3 x 3 kernel applied by slicing); NaN for images under 3 x 3 px.
    The stain densities are the means of skimage's ``rgb2hed`` haematoxylin and eosin channels.
    The image is decoded once, to 8 bits per channel; the optical densities come from a 256-entry table (no log
    per pixel) and go through ``rgb2hed``'s own matrix product, so every value equals the float64 computation.
    """
    pixels, width, height = _read_pixels(path, max_side)
    r8, g8, b8 = (np.ascontiguousarray(pixels[..., i]) for i in range(3))  # planes: fast contiguous reductions
    r, g, b = r8 / 255.0, g8 / 255.0, b8 / 255.0
    y = LUMA[0] * r + LUMA[1] * g + LUMA[2] * b
    top8 = np.maximum(np.maximum(r8, g8), b8)
    top = _UNIT[top8]
    spread = top - _UNIT[np.minimum(np.minimum(r8, g8), b8)]
    saturation = np.divide(spread, top, out=np.zeros_like(top), where=top8 > 0)
    if min(y.shape) >= 3:
        lap = y[:-2, 1:-1] + y[2:, 1:-1] + y[1:-1, :-2] + y[1:-1, 2:] - 4.0 * y[1:-1, 1:-1]
        sharpness = float(np.var(lap))
    else:
        sharpness = math.nan
    hed = hed_densities(pixels)  # rgb2hed without its per-pixel log: the same values
    planes = (r, g, b)
    means = [float(p.mean()) for p in planes]
    sds = [float(p.std()) for p in planes]
    return {"mean_r": means[0], "mean_g": means[1], "mean_b": means[2],
            "sd_r": sds[0], "sd_g": sds[1], "sd_b": sds[2],
            "brightness": float(y.mean()), "contrast": float(y.std()),
            "saturation": float(saturation.mean()), "sharpness": sharpness,
            "width": int(width), "height": int(height), "aspect": width / height,
            "od_hematoxylin": float(hed[..., 0].mean()), "od_eosin": float(hed[..., 1].mean())}


def _statistics_rows(paths: list[Path], max_side: int) -> list[dict]:
    """image_statistics of each path, in order (one worker's chunk)."""
    return [image_statistics(p, max_side=max_side) for p in paths]


def statistics_table(paths, root: str | Path = ".", max_side: int = 1024, workers: int = 1) -> pd.DataFrame:
    """One row per image path (relative to `root`): column ``path`` as given, then STATISTICS.

    With ``workers`` > 1 the images are spread over that many processes in contiguous chunks (the same rows in
    the same order; the first unreadable image still raises its LeukoError). The process computing the
    statistics keeps freed memory for the next image (``reuse_freed_memory``)."""
    paths = list(paths)
    files = [Path(root) / p for p in paths]
    workers = max(1, min(int(workers), len(files) // _MIN_CHUNK))
    if workers == 1:
        reuse_freed_memory()
        stats_rows = _statistics_rows(files, max_side)
    else:
        size = math.ceil(len(files) / (4 * workers))
        chunks = [files[i:i + size] for i in range(0, len(files), size)]
        with ProcessPoolExecutor(workers, initializer=reuse_freed_memory) as pool:
            stats_rows = [row for rows in pool.map(_statistics_rows, chunks, [max_side] * len(chunks))
                          for row in rows]
    rows = [{"path": p, **row} for p, row in zip(paths, stats_rows)]
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


def separability(train: np.ndarray, other: np.ndarray) -> tuple[float, float]:
    """(AUC, separability) of one statistic between two samples: AUC = P(other > train) + P(tie) / 2 from the ranks
    (Mann-Whitney U / (n_train n_other)); separability = |AUC − 0.5| × 2, in [0, 1] whatever the statistic's spread."""
    ranks = stats.rankdata(np.concatenate([train, other]))
    u = float(ranks[train.size:].sum()) - other.size * (other.size + 1) / 2
    auc = u / (train.size * other.size)
    return auc, abs(auc - 0.5) * 2


def shift_table(train: pd.DataFrame, other: pd.DataFrame) -> pd.DataFrame:
    """Per statistic: mean and population SD of both sets, Wasserstein-1 distance (also in units of the training
    SD), the two-sample Kolmogorov-Smirnov statistic ``ks`` with its p-value ``ks_p``, the rank AUC of telling the
    set from the training images by this statistic alone with its ``separability`` |AUC − 0.5| × 2, and the
    standardised difference ``std_difference`` (set mean − training mean over the SD of both sets pooled). Rows are
    ranked by separability, ties by |std_difference| (both bounded, so a near-constant training statistic does not
    dominate), NaN last. Missing values are dropped."""
    check_statistics_frame(train, "shift_table: training frame", STATISTICS)
    check_statistics_frame(other, "shift_table: other frame", STATISTICS)
    rows = []
    for s in STATISTICS:
        a, b = finite_values(train, s), finite_values(other, s)
        row = {"statistic": s, "train_mean": math.nan, "train_sd": math.nan,
               "set_mean": math.nan, "set_sd": math.nan, "wasserstein": math.nan,
               "wasserstein_sd": math.nan, "ks": math.nan, "ks_p": math.nan, "auc": math.nan,
               "separability": math.nan, "std_difference": math.nan}
        if a.size:
            row.update(train_mean=float(a.mean()), train_sd=float(a.std()))
        if b.size:
            row.update(set_mean=float(b.mean()), set_sd=float(b.std()))
        if a.size and b.size:
            w = float(stats.wasserstein_distance(a, b))
            ks = stats.ks_2samp(a, b)
            auc, sep = separability(a, b)
            pooled = float(np.concatenate([a, b]).std())
            row.update(wasserstein=w, ks=float(ks.statistic), ks_p=float(ks.pvalue), auc=auc, separability=sep,
                       wasserstein_sd=w / row["train_sd"] if row["train_sd"] > 0 else math.nan,
                       std_difference=(row["set_mean"] - row["train_mean"]) / pooled if pooled > 0 else 0.0)
        rows.append(row)
    table = pd.DataFrame(rows)
    order = table.assign(_tie=table["std_difference"].abs()).sort_values(
        ["separability", "_tie"], ascending=False, na_position="last", kind="stable").index
    return table.loc[order].reset_index(drop=True)
