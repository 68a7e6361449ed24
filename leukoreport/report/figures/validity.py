"""Figures of the validity section: risk-coverage curves and accuracy per OOD-score band (from stats.shift)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import PercentFormatter

from leukoreport.base.errors import LeukoError
from leukoreport.report.figures import style
from leukoreport.report.figures.style import STYLE
from leukoreport.stats.shift import BAND_LABELS, aurc, check_risk_table

__all__ = ["plot_ood_bands", "plot_risk_coverage"]


def _colours(n: int) -> list:
    """n distinct colours: tab10, then tab20 beyond ten."""
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(n)]


def plot_risk_coverage(curves: dict[str, pd.DataFrame], out: str | Path, title: str) -> None:
    """Accuracy of the kept images against coverage (most usual first), one line per set, with a
    dotted line at each set's accuracy over all its images."""
    if not curves:
        raise LeukoError("plot_risk_coverage: no curves")
    for name, table in curves.items():
        check_risk_table(f"plot_risk_coverage: curve '{name}'", table)
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(8, 5.6), constrained_layout=True)
        handles = []
        for colour, (name, table) in zip(_colours(len(curves)), curves.items()):
            cov = np.r_[0.0, table["coverage"].to_numpy(dtype=np.float64)]
            acc = table["accuracy"].to_numpy(dtype=np.float64)
            full = float(acc[-1])
            line, = ax.step(cov, np.r_[acc[0], acc], where="pre", color=colour, lw=1.6,
                            label=f"{name} (n = {len(table)}, all images {full:.1%}, "
                                  f"AURC {aurc(table):.3f})")
            ax.axhline(full, color=colour, ls=":", lw=1.3)
            handles.append(line)
        handles.append(Line2D([], [], color="0.4", ls=":", lw=1.3,
                              label="dotted: accuracy over every image of the set"))
        ax.set_xlim(0, 1)
        ax.set_ylim(-0.02, 1.02)
        ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.set_xlabel("coverage: share of images kept, most usual (smallest kNN distance) first")
        ax.set_ylabel("accuracy of the kept images")
        ax.grid(True, alpha=0.3)
        ax.set_axisbelow(True)
        ax.set_title(title)
        fig.legend(handles=handles, loc="outside lower center", ncol=1, frameon=False)
        style.save_figure(fig, out)


def plot_ood_bands(bands: dict[str, pd.DataFrame], out: str | Path, title: str) -> None:
    """Grouped bars of accuracy per kNN-distance percentile band per set, Wilson error bars and n
    above each bar."""
    if not bands:
        raise LeukoError("plot_ood_bands: no sets")
    need = {"band", "n", "accuracy", "low", "high"}
    for name, table in bands.items():
        if not isinstance(table, pd.DataFrame) or not need <= set(table.columns):
            raise LeukoError(f"plot_ood_bands: set '{name}' must be an accuracy_by_band DataFrame")
    labels = list(BAND_LABELS)
    n_sets = len(bands)
    width = 0.8 / n_sets
    x = np.arange(len(labels), dtype=np.float64)
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(max(8.0, 2.0 + len(labels) * (0.5 + 0.3 * n_sets)), 5.6),
                               constrained_layout=True)
        upright = n_sets >= 3  # counts turned 90 degrees when side-by-side ones would touch
        n_size = 9 if n_sets <= 3 else 8
        for j, (colour, (name, table)) in enumerate(zip(_colours(n_sets), bands.items())):
            rows = table.set_index("band").reindex(labels)
            acc = rows["accuracy"].to_numpy(dtype=np.float64)
            low = rows["low"].to_numpy(dtype=np.float64)
            high = rows["high"].to_numpy(dtype=np.float64)
            n = rows["n"].fillna(0).to_numpy().astype(int)
            pos = x - 0.4 + width * (j + 0.5)
            has = n > 0
            ax.bar(pos[has], acc[has], width * 0.92, color=colour, label=str(name))
            ax.errorbar(pos[has], acc[has], yerr=np.clip([acc[has] - low[has], high[has] - acc[has]], 0.0, None),
                        fmt="none", ecolor="0.15", elinewidth=1.0, capsize=3 if n_sets <= 4 else 2)
            for p_, h_, n_ in zip(pos, np.where(has, high, 0.0), n):
                ax.text(p_, h_ + 0.015, f"n={n_}", ha="center",
                        va="bottom", fontsize=n_size, color="0.15" if n_ else "0.5",
                        rotation=90 if upright else 0)
        ax.set_xticks(x, [label.replace("every test", "every\ntest") for label in labels])
        ax.set_xlim(-0.5, len(labels) - 0.5)
        ax.set_ylim(0, 1.24 if upright else 1.14)
        ax.set_yticks(np.linspace(0, 1, 6))
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.set_xlabel("kNN distance to the training images, as a percentile of the test split's own")
        ax.set_ylabel("accuracy (Wilson interval)")
        ax.grid(True, axis="y", alpha=0.3)
        ax.set_axisbelow(True)
        ax.set_title(title)
        fig.legend(loc="outside lower center", ncol=min(n_sets, 4), frameon=False)
        style.save_figure(fig, out)
