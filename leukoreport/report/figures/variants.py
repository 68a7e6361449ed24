"""Figures of the Variants section: per-metric interval plots and the probability of improvement."""

from __future__ import annotations

import math
from pathlib import Path

from leukoreport.compare import HIGHER_IS_BETTER, METRIC_LABELS
from leukoreport.report.figures.common import WIDE_STYLE, _save, plt  # matplotlib with the Agg backend

VERDICT_COLOURS = {"better": "#1a7f37", "worse": "#b42318", "no difference detected": "#333333", None: "#777777"}
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
                colour = VERDICT_COLOURS[verdicts.get((variant, dataset))]
                values = [100 * v for v in r["values"]]
                ax.scatter(values, [y + 0.18] * len(values), s=18, color="#888888", zorder=2)
                ax.plot([100 * r["mean_low"], 100 * r["mean_high"]], [y, y], color=colour, lw=3, zorder=3)
                ax.scatter([100 * r["mean"]], [y], s=40, color=colour, zorder=4)
                ax.scatter([100 * r["iqm"]], [y - 0.18], s=36, marker="D", facecolor="white", edgecolor=colour,
                           zorder=4)
            _label_panel(ax, [f"{v} (ref.)" if v == result["reference"] else v for v in variants], dataset,
                         f"{METRIC_LABELS.get(metric, metric)} (%)"
                         + ("" if HIGHER_IS_BETTER.get(metric, True) else ", lower is better"))
        fig.tight_layout()
        _save(fig, out)


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
                colour = VERDICT_COLOURS[c["verdict"]]
                ax.plot([c["pi_low"], c["pi_high"]], [y, y], color=colour, lw=2.5)
                ax.scatter([c["p_improvement"]], [y], s=30, color=colour, zorder=3)
            ax.axvline(0.5, color="#999999", lw=1, ls="--")
            ax.set_xlim(-0.02, 1.02)
            _label_panel(ax, [f"{v}: {METRIC_LABELS.get(m, m)}" for v, m in labels], dataset,
                         f"P(variant beats {result['reference']})")
        fig.tight_layout()
        _save(fig, out)
