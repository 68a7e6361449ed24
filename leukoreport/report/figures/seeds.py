"""The strip plot of per-run values of one data set: each seed's point, mean ± SD and the ensemble."""

from __future__ import annotations

import math
import numbers
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator, PercentFormatter
from matplotlib.transforms import Bbox

from leukoreport.base.errors import LeukoError
from leukoreport.base.metric_catalogue import wrapped_label
from leukoreport.base.validation import require_columns
from leukoreport.report.figures import style
from leukoreport.report.figures.style import WIDE_STYLE, has_values, required_key

__all__ = ["SEED_LABEL_SIZE", "SEED_METRICS", "plot_seed_values"]


# the metrics of the strip plot, with their axis labels ('balanced\naccuracy')
SEED_METRICS = {key: wrapped_label(key) for key in ("accuracy", "balanced_accuracy", "macro_f1", "ece")}


def _zoomed_limits(values: list[float], top: float = 1.0) -> tuple[float, float]:
    """Y limits for scores in [0, `top`]: from a little below the lowest value to just above
    `top`, at least 4 percentage points tall."""
    low = min(values) if values else 0.0
    span = max(top - low, 0.04)
    return max(0.0, top - span - 0.12 * span), top + 0.08 * span


def _seed_offsets(k: int) -> np.ndarray:
    """Horizontal offsets of `k` runs within a category: evenly spread, reproducible."""
    return np.zeros(1) if k == 1 else np.linspace(-0.17, 0.24, k)


SEED_LABEL_SIZE = 12
_LABEL_SPOTS = [((0, 5), "center", "bottom"), ((0, -5), "center", "top"),
                ((6, 0), "left", "center"), ((-6, 0), "right", "center"),
                ((6, 5), "left", "bottom"), ((6, -5), "left", "top"),
                ((-6, 5), "right", "bottom"), ((-6, -5), "right", "top")]


def _place_seed_labels(fig: Figure, ax, items: list[tuple[float, float, str]],
                       obstacles: list) -> None:
    """Write each (x, y, text) of `items` beside its point at the first spot (above, below,
    right, left, diagonals) that stays inside `ax` and clears the other labels and the
    `obstacles` (display-space boxes of points and bars); else where it overlaps least."""
    renderer = fig.canvas.get_renderer()
    inside = ax.get_window_extent(renderer)
    placed: list = []
    for x, y, text in items:
        px, py = ax.transData.transform((x, y))
        others = placed + [b for b in obstacles  # all but the box of this label's own point
                           if max(abs(b.x0 + b.x1 - 2 * px), abs(b.y0 + b.y1 - 2 * py)) > 1]
        best = None
        for (dx, dy), ha, va in _LABEL_SPOTS:
            label = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points",
                                ha=ha, va=va, fontsize=SEED_LABEL_SIZE, color="0.2", zorder=5)
            box = label.get_window_extent(renderer)
            label.remove()
            outside = box.width * box.height - _overlap_area(box, inside)
            cost = sum(_overlap_area(box, b) for b in others) + 4 * outside
            if best is None or cost < best[0]:
                best = (cost, (dx, dy), ha, va, box)
            if cost == 0:
                break
        _, offset, ha, va, box = best
        ax.annotate(text, (x, y), xytext=offset, textcoords="offset points", ha=ha, va=va,
                    fontsize=SEED_LABEL_SIZE, color="0.2", zorder=5)
        # keep neighbouring labels a space apart so that '3' and '42' do not read as '342'
        gap = 0.5 * SEED_LABEL_SIZE * fig.dpi / 72
        placed.append(Bbox([[box.x0 - gap, box.y0 - 2], [box.x1 + gap, box.y1 + 2]]))


def _tied_labels(points: list[tuple[float, float, int, int]],
                 labels: list[str]) -> list[tuple[float, float, str]]:
    """One (x, y, text) label per point, but one label for runs with equal values in the same
    category ('all runs' when every run ties), centred under the group."""
    groups: dict[tuple[int, float], list[tuple[float, int]]] = {}
    for x, y, run, category in points:
        groups.setdefault((category, round(float(y), 9)), []).append((x, run))
    items = []
    for (_category, y), members in groups.items():
        xs = [x for x, _ in members]
        if len(members) == 1:
            text = labels[members[0][1]]
        elif len(members) == len(labels):
            text = "all runs"
        else:
            text = ", ".join(labels[run] for _, run in members)
        items.append(((min(xs) + max(xs)) / 2, y, text))
    return items


def _overlap_area(a, b) -> float:
    """Area shared by two display-space boxes."""
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return max(w, 0.0) * max(h, 0.0)


def _strip_panel(ax, runs: pd.DataFrame, columns: list[str], colours: list,
                 ensemble: dict | None) -> tuple[list[float], list[tuple[float, float, int, int]]]:
    """Per-run points of `columns` at x = 0, 1, ..., mean ± SD to their left when there are
    several runs, the ensemble diamond to their right; returns the values drawn and the
    (x, y, run index, category) of each run's point."""
    offsets = _seed_offsets(len(runs))
    drawn, points = [], []
    for x, column in enumerate(columns):
        values = pd.to_numeric(runs[column], errors="coerce").to_numpy(dtype=float)
        ok = ~np.isnan(values)
        drawn += list(values[ok])
        ax.scatter(x + offsets[ok], values[ok], c=[colours[i] for i in np.flatnonzero(ok)], s=40,
                   edgecolors="white", linewidths=0.6, zorder=3)
        points += [(x + offsets[i], values[i], i, x) for i in np.flatnonzero(ok)]
        if ok.sum() >= 2:
            mean, sd = values[ok].mean(), values[ok].std(ddof=1)
            ax.errorbar([x - 0.32], [mean], yerr=[sd], fmt="_", color="0.3", ms=12, mew=1.6,
                        elinewidth=1.4, capsize=0, zorder=2)
        if ensemble is not None and ensemble.get(column) is not None:
            value = float(ensemble[column])
            if not math.isnan(value):
                drawn.append(value)
                ax.plot([x + 0.36], [value], "D", color="black", ms=7, zorder=4)
    ax.set_xlim(-0.55, len(columns) - 0.45)
    ax.yaxis.set_major_locator(MaxNLocator(6, steps=[1, 2, 5, 10]))
    ax.grid(True, axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    return drawn, points


def _percent_ticks(ax) -> None:
    """Percent tick labels on the y axis with as many decimals as the tick step needs."""
    ticks = ax.get_yticks()
    step = (ticks[1] - ticks[0]) * 100 if len(ticks) > 1 else 1.0
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) if step > 0 else 0
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=decimals))


def _marker_boxes(ax) -> list:
    """Display-space boxes around every scatter point, errorbar and line marker of `ax`."""
    boxes = []
    for collection in ax.collections:
        if isinstance(collection, PathCollection):  # scatter points
            r = math.sqrt(collection.get_sizes()[0]) / 2 * ax.figure.dpi / 72 + 1
            for px, py in ax.transData.transform(collection.get_offsets()):
                boxes.append(Bbox([[px - r, py - r], [px + r, py + r]]))
        elif isinstance(collection, LineCollection):  # error bars
            for segment in collection.get_segments():
                (x0, y0), (x1, y1) = ax.transData.transform(segment)[[0, -1]]
                boxes.append(Bbox([[min(x0, x1) - 3, min(y0, y1)],
                                   [max(x0, x1) + 3, max(y0, y1)]]))
    for line in ax.lines:
        for px, py in ax.transData.transform(np.column_stack(line.get_data())):
            boxes.append(Bbox([[px - 7, py - 7], [px + 7, py + 7]]))
    return boxes


def plot_seed_values(table: pd.DataFrame, dataset: str, out: str | Path,
                     ensemble: dict | None = None) -> None:
    """Strip plot of the per-run values for one data set: accuracy, balanced accuracy and macro
    F1, ECE on its own axis, recall per class; mean ± SD beside the points, the seed ensemble as
    a black diamond when given."""
    needed = ["split_seed", "seed", "dataset", "n", *SEED_METRICS]
    require_columns("seed table", table, needed)
    runs = table[table["dataset"].astype(str) == str(dataset)]
    if runs.empty:
        raise LeukoError(f"seed table: no rows for dataset '{dataset}'")
    if ensemble is not None:
        for key in [*SEED_METRICS, *(k for k in ensemble if str(k).startswith("recall_"))]:
            value = required_key(ensemble, key, "ensemble")
            if value is not None and not isinstance(value, numbers.Real):
                raise LeukoError(f"ensemble: '{key}' must be a number, got {value!r}")
    runs = runs.sort_values(["split_seed", "seed"], kind="stable").reset_index(drop=True)
    classes = [c[len("recall_"):] for c in runs.columns
               if c.startswith("recall_") and has_values(runs, c)]
    split_seeds = list(dict.fromkeys(runs["split_seed"]))
    palette = plt.get_cmap("tab10").colors
    if len(split_seeds) > 1:
        colours = [palette[split_seeds.index(s) % len(palette)] for s in runs["split_seed"]]
    else:
        colours = [palette[0]] * len(runs)
    labels = [f"{s}" for s in runs["seed"]] if len(runs) <= 5 else None
    k = len(runs)
    sizes = sorted(set(pd.to_numeric(runs["n"], errors="coerce").dropna().astype(int)))
    n_text = ("?" if not sizes else str(sizes[0]) if len(sizes) == 1
              else f"{sizes[0]}\u2013{sizes[-1]}")

    scores = ["accuracy", "balanced_accuracy", "macro_f1"]
    with plt.rc_context(WIDE_STYLE):
        # three or more classes: recall in a second row of its own, with room for the labels
        two_rows = len(classes) > 2
        ratios = [3, 1.15] + ([1.15 * len(classes)] if classes and not two_rows else [])
        fig = plt.figure(figsize=(10, 7.8 if two_rows else 4.4), layout="constrained")
        grid = fig.add_gridspec(2 if two_rows else 1, len(ratios), width_ratios=ratios)
        panels = [(fig.add_subplot(grid[0, 0]), scores, [SEED_METRICS[c] for c in scores],
                   "overall (higher is better)"),
                  (fig.add_subplot(grid[0, 1]), ["ece"], [SEED_METRICS["ece"]],
                   "calibration\n(lower is better)" if len(ratios) > 2 else
                   "calibration (lower is better)")]
        if classes:
            panels.append((fig.add_subplot(grid[1, :] if two_rows else grid[0, 2]),
                           [f"recall_{c}" for c in classes], classes,
                           "recall per class" if two_rows else "recall"))
        all_points = []
        for ax, columns, ticks, title in panels:
            drawn, points = _strip_panel(ax, runs, columns, colours, ensemble)
            all_points.append(points)
            if columns == ["ece"]:
                ax.set_ylim(0, max(drawn + [0.01]) * (1.3 if labels else 1.15))
            else:
                ax.set_ylim(*_zoomed_limits(drawn))
            ax.set_xticks(range(len(columns)), ticks)
            ax.set_title(title)
            _percent_ticks(ax)

        handles = []
        if len(split_seeds) > 1:
            handles += [Line2D([], [], ls="", marker="o", ms=7, color=palette[i % len(palette)],
                               label=f"split seed {s}") for i, s in enumerate(split_seeds)]
        else:
            handles.append(Line2D([], [], ls="", marker="o", ms=7, color=palette[0],
                                  label="one run" + (", labelled with its seed" if labels else "")))
        if labels and len(split_seeds) > 1:
            handles.append(Line2D([], [], ls="", label="(numbers: seed)"))
        if k >= 2:
            handles.append(Line2D([], [], ls="", marker="_", ms=12, mew=1.6, color="0.3",
                                  label="mean \u00b1 SD"))
        if ensemble is not None:
            handles.append(Line2D([], [], ls="", marker="D", ms=7, color="black",
                                  label="seed ensemble"))
        fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 5),
                   frameon=False, handletextpad=0.4, columnspacing=1.4)
        fig.suptitle(f"Per-seed values: {dataset} ({n_text} images, {k} "
                     f"run{'s' * (k != 1)})", fontsize=14)
        if labels is not None:
            # lay out the whole figure first, so that the label spots are measured in place
            fig.canvas.draw()
            for (ax, *_), points in zip(panels, all_points):
                _place_seed_labels(fig, ax, _tied_labels(points, labels), _marker_boxes(ax))
        style.save_figure(fig, out)
