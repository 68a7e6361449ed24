"""The image-shift figure: distributions of per-image statistics, training images against another set."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from leukoreport.base.errors import LeukoError
from leukoreport.data.image_stats import DEFAULT_PLOTTED, LABELS, check_statistics_frame, finite_values
from leukoreport.report.figures import style
from leukoreport.report.figures.style import WIDE_STYLE

__all__ = ["plot_distributions"]


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
    check_statistics_frame(train, "plot_distributions: training frame", statistics)
    check_statistics_frame(other, "plot_distributions: other frame", statistics)
    n_cols = min(3, len(statistics))
    n_rows = math.ceil(len(statistics) / n_cols)
    c_train, c_set = "tab:blue", "tab:orange"
    with plt.rc_context(WIDE_STYLE):
        fig, axes = plt.subplots(n_rows, n_cols, figsize=(10, 0.6 + 2.6 * n_rows),
                                 constrained_layout=True, squeeze=False)
        for ax in axes.flat[len(statistics):]:
            ax.set_visible(False)
        for ax, s in zip(axes.flat, statistics):
            a, b = finite_values(train, s), finite_values(other, s)
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
                style.log_axis(ax, "x", "{:.0e}", subs=(1.0, 2.0, 5.0))
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
        style.save_figure(fig, out)
