"""Per-image statistics (colour, brightness, sharpness, size, stain density) and their shift
between the training images and another image set."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import (FuncFormatter, LogLocator, MaxNLocator,  # noqa: E402
                               NullFormatter)
from PIL import Image  # noqa: E402
from scipy import stats  # noqa: E402
from skimage.color import rgb2hed  # noqa: E402

from leukoreport.base.errors import LeukoError  # noqa: E402
from leukoreport.report.figures.common import WIDE_STYLE, _save  # noqa: E402

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


def _check_frame(df: pd.DataFrame, where: str, columns: list[str]) -> None:
    """LeukoError when `df` is not a frame with `columns` and at least one row."""
    if not isinstance(df, pd.DataFrame):
        raise LeukoError(f"{where}: must be a statistics_table DataFrame")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise LeukoError(f"{where}: missing column(s) {missing}")
    if df.empty:
        raise LeukoError(f"{where}: frame is empty (no images)")


def _values(df: pd.DataFrame, column: str) -> np.ndarray:
    """The finite numeric values of one column as float64."""
    v = pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=np.float64)
    return v[np.isfinite(v)]


def shift_table(train: pd.DataFrame, other: pd.DataFrame) -> pd.DataFrame:
    """Per statistic: mean and population SD of both sets, Wasserstein-1 distance (also in units
    of the training SD, which ranks the statistics: sorted descending, NaN last) and the two-sample
    Kolmogorov-Smirnov statistic ``ks`` with its p-value ``ks_p``. Missing values are dropped."""
    _check_frame(train, "shift_table: training frame", STATISTICS)
    _check_frame(other, "shift_table: other frame", STATISTICS)
    rows = []
    for s in STATISTICS:
        a, b = _values(train, s), _values(other, s)
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


def _bins(values: np.ndarray, log: bool) -> np.ndarray:
    """Shared histogram edges over `values` (both sets), geometric when `log`."""
    lo, hi = float(values.min()), float(values.max())
    n = int(min(30, max(8, round(math.sqrt(values.size)))))
    if hi <= lo:
        if log:
            return np.array([lo / 1.1, lo * 1.1])
        pad = abs(lo) * 0.05 or 0.5
        return np.array([lo - pad, hi + pad])
    return np.geomspace(lo, hi, n + 1) if log else np.linspace(lo, hi, n + 1)


def plot_distributions(train: pd.DataFrame, other: pd.DataFrame, name: str, out: str | Path,
                       statistics: list[str] | None = None) -> None:
    """Panels (3 columns) of density step histograms of the training images and set `name` on
    shared bins; a set of under 5 images is drawn as one vertical line per image."""
    statistics = list(DEFAULT_PLOTTED if statistics is None else statistics)
    if not statistics:
        raise LeukoError("plot_distributions: no statistics to plot")
    _check_frame(train, "plot_distributions: training frame", statistics)
    _check_frame(other, "plot_distributions: other frame", statistics)
    n_cols = min(3, len(statistics))
    n_rows = math.ceil(len(statistics) / n_cols)
    c_train, c_set = "tab:blue", "tab:orange"
    with plt.rc_context(WIDE_STYLE):
        fig, axes = plt.subplots(n_rows, n_cols, figsize=(10, 0.6 + 2.6 * n_rows),
                                 constrained_layout=True, squeeze=False)
        for ax in axes.flat[len(statistics):]:
            ax.set_visible(False)
        for ax, s in zip(axes.flat, statistics):
            a, b = _values(train, s), _values(other, s)
            both = np.concatenate([a, b])
            ax.set_title(LABELS.get(s, s))
            ax.grid(True, alpha=0.3)
            ax.set_axisbelow(True)
            if not both.size:
                ax.text(0.5, 0.5, "no values", transform=ax.transAxes, ha="center",
                        va="center", color="0.4")
                continue
            log = s == "sharpness" and bool((both > 0).all())
            bins = _bins(both, log)
            if a.size:
                ax.hist(a, bins=bins, density=True, histtype="step", lw=1.8, color=c_train)
            if 0 < b.size < 5:
                for v in b:
                    ax.axvline(v, color=c_set, lw=1.8, ls="--")
            elif b.size:
                ax.hist(b, bins=bins, density=True, histtype="step", lw=1.8, color=c_set)
            if both.min() == both.max():
                ax.text(0.5, 0.5, f"every image: {both[0]:.4g}", transform=ax.transAxes,
                        ha="center", va="center", color="0.2",
                        bbox={"facecolor": "white", "edgecolor": "0.7", "boxstyle": "round"})
            if log:
                ax.set_xscale("log")
                ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
                ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0e}"))
                ax.xaxis.set_minor_formatter(NullFormatter())
                pad = (bins[-1] / bins[0]) ** 0.03
                ax.set_xlim(bins[0] / pad, bins[-1] * pad)
            else:
                ax.xaxis.set_major_locator(MaxNLocator(4))
                pad = 0.03 * (bins[-1] - bins[0])
                ax.set_xlim(bins[0] - pad, bins[-1] + pad)
            ax.set_ylim(0, 1.08 * ax.get_ylim()[1])
            ax.yaxis.set_major_locator(MaxNLocator(3))
            ax.tick_params(axis="y", labelleft=False)
        for row in axes:
            row[0].set_ylabel("density")
        handles = [Line2D([], [], color=c_train, lw=1.8, label=f"training (n={len(train)})"),
                   Line2D([], [], color=c_set, lw=1.8, ls="--" if len(other) < 5 else "-",
                          label=f"{name} (n={len(other)})")]
        fig.legend(handles=handles, loc="outside upper center", ncol=2, frameon=False)
        _save(fig, out)
