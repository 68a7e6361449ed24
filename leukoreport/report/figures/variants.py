"""Figures of the Variants section: per-metric interval plots and the probability of improvement."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt

from leukoreport.base import metric_catalogue
from leukoreport.report.figures import style
from leukoreport.report.figures.style import WIDE_STYLE
from leukoreport.report.verdict_style import verdict_style

__all__ = ["PANELS_PER_ROW", "plot_improvement", "plot_variant_intervals"]

PANELS_PER_ROW = 3


def _grid(n: int, height_per_row: float, width: float = 4.2, label_width: float = 1.2):
    """A figure with n panels, at most PANELS_PER_ROW per row sharing the y axis; unused axes hidden."""
    cols = min(n, PANELS_PER_ROW)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols + label_width, height_per_row * rows + 0.8),
                             squeeze=False, sharey=True)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    return fig, axes.ravel()[:n]


def _label_panel(ax, labels: list[str], dataset: str, xlabel: str) -> None:
    """Rows labelled top to bottom, the dataset as title, light vertical grid."""
    ax.set_yticks(range(len(labels)))
    ax.set_yticklabels(labels)
    ax.set_ylim(len(labels) - 0.5, -0.5)
    ax.set_title("test split" if dataset == "test" else dataset, loc="left")
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", color="#dddddd", lw=0.6)


def plot_variant_intervals(result: dict, metric: str, out: str | Path) -> None:
    """Every run's value (dots), the mean over seeds with its interval (bar) and the IQM (diamond); variants down."""
    variants, datasets = result["variants"], result["datasets"]
    rows = {(r["variant"], r["dataset"]): r for r in result["summary"] if r["metric"] == metric}
    verdicts = {(c["variant"], c["dataset"]): c["verdict"] for c in result["comparisons"] if c["metric"] == metric}
    with plt.rc_context(WIDE_STYLE):
        fig, axes = _grid(len(datasets), 0.55 * len(variants) + 1.0)
        for ax, dataset in zip(axes, datasets):
            for y, variant in enumerate(variants):
                r = rows[(variant, dataset)]
                colour = verdict_style(verdicts.get((variant, dataset))).colour
                values = [100 * v for v in r["values"]]
                ax.scatter(values, [y + 0.18] * len(values), s=18, color="#888888", zorder=2)
                ax.plot([100 * r["mean_low"], 100 * r["mean_high"]], [y, y], color=colour, lw=3, zorder=3)
                ax.scatter([100 * r["mean"]], [y], s=40, color=colour, zorder=4)
                ax.scatter([100 * r["iqm"]], [y - 0.18], s=36, marker="D", facecolor="white", edgecolor=colour,
                           zorder=4)
            _label_panel(ax, [f"{v} (ref.)" if v == result["reference"] else v for v in variants], dataset,
                         f"{metric_catalogue.label(metric)} (%)"
                         + ("" if metric_catalogue.higher_is_better(metric) else ", lower is better"))
        fig.tight_layout()
        style.save_figure(fig, out)


def plot_improvement(result: dict, out: str | Path) -> None:
    """P(variant beats the reference) with its interval: one panel per dataset, one row per variant and metric."""
    comparisons = result["comparisons"]
    datasets, metrics = result["datasets"], result["metrics"]
    others = [v for v in result["variants"] if v != result["reference"]]
    labels = [(v, m) for v in others for m in metrics]
    index = {(c["variant"], c["dataset"], c["metric"]): c for c in comparisons}
    with plt.rc_context(WIDE_STYLE):
        fig, axes = _grid(len(datasets), 0.32 * max(1, len(labels)) + 1.0, width=3.6, label_width=3.0)
        for ax, dataset in zip(axes, datasets):
            for y, (variant, metric) in enumerate(labels):
                c = index.get((variant, dataset, metric))
                if c is None:
                    continue
                colour = verdict_style(c["verdict"]).colour
                ax.plot([c["pi_low"], c["pi_high"]], [y, y], color=colour, lw=2.5)
                ax.scatter([c["p_improvement"]], [y], s=30, color=colour, zorder=3)
            ax.axvline(0.5, color="#999999", lw=1, ls="--")
            ax.set_xlim(-0.02, 1.02)
            _label_panel(ax, [f"{v}: {metric_catalogue.label(m)}" for v, m in labels], dataset,
                         f"P(variant beats {result['reference']})")
        fig.tight_layout()
        style.save_figure(fig, out)
