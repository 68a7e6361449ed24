"""Figures of one run on one data set: confusion matrix, per-class scores and reliability diagram."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.ticker import PercentFormatter

from leukoreport.base.errors import LeukoError
from leukoreport.report.figures import style
from leukoreport.report.figures.style import STYLE, required_key

__all__ = ["plot_confusion", "plot_per_class", "plot_reliability"]


def plot_confusion(metrics: dict, out: str | Path, title: str | None = None) -> None:
    """Counts and row-normalised confusion matrices side by side; absent rows blank.
    `title` replaces the computed suptitle (data set, seed, accuracy) when given."""
    cm = required_key(metrics, "confusion_matrix", "metrics")
    labels = list(required_key(cm, "labels", "metrics.confusion_matrix"))
    counts = np.asarray(required_key(cm, "matrix", "metrics.confusion_matrix"), dtype=float)
    if counts.shape != (len(labels), len(labels)):
        raise LeukoError(f"metrics.confusion_matrix: matrix shape {counts.shape} does not "
                         f"match {len(labels)} labels")
    per_class = metrics.get("per_class", {})
    row_sums = counts.sum(axis=1)
    present = [per_class.get(c, {}).get("present", row_sums[i] > 0) for i, c in enumerate(labels)]
    rows = [c if p else f"{c} (absent)" for c, p in zip(labels, present)]
    with np.errstate(divide="ignore", invalid="ignore"):
        normalised = counts / row_sums[:, None]
    normalised[row_sums == 0] = np.nan

    k = len(labels)
    side = max(3.8, 0.65 * k + 1.3)
    annot_size = 13 if k <= 6 else (11 if k <= 9 else 9)
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 2, figsize=(2 * side + 0.8, side), constrained_layout=True)
        panels = [(counts.astype(int), "d", "Counts", None, None),
                  (normalised, ".2f", "Row-normalised (recall on diagonal)", 0.0, 1.0)]
        for ax, (data, fmt, title, vmin, vmax) in zip(axes, panels):
            sns.heatmap(data, ax=ax, annot=True, fmt=fmt, cmap="Blues", cbar=False,
                        vmin=vmin, vmax=vmax, square=True, linewidths=0.5, linecolor="white",
                        annot_kws={"size": annot_size}, xticklabels=labels, yticklabels=rows)
            ax.set_title(title)
            ax.set_xlabel("predicted label")
            ax.set_ylabel("true label")
            ax.tick_params(labelsize=11)
            ax.tick_params(axis="x", labelrotation=40)
            ax.tick_params(axis="y", labelrotation=0)
            for tick in ax.get_xticklabels():
                tick.set_horizontalalignment("right")
                tick.set_rotation_mode("anchor")
            for tick, p in zip(ax.get_yticklabels(), present):
                if not p:
                    tick.set_color("0.45")
                    tick.set_fontstyle("italic")
        accuracy = metrics.get("accuracy")
        acc = "n/a" if accuracy is None else f"{accuracy:.1%}"
        n_part = (f" ({metrics['n_correct']}/{metrics['n']})"
                  if "n" in metrics and "n_correct" in metrics else "")
        if title is None:
            title = (f"Confusion matrix: {metrics.get('dataset', '?')} set, seed "
                     f"{metrics.get('seed', '?')}, accuracy {acc}{n_part}")
        fig.suptitle(title, fontsize=13)
        style.save_figure(fig, out)


def plot_per_class(metrics: dict, out: str | Path) -> None:
    """Grouped bars of precision, recall and F1 for the present classes; absent ones in a note."""
    per_class = required_key(metrics, "per_class", "metrics")
    classes = list(metrics.get("classes", per_class.keys()))
    present = [c for c in classes if per_class.get(c, {}).get("present")]
    absent = [c for c in classes if c not in present]
    scores = ["precision", "recall", "f1"]
    names = {"precision": "precision", "recall": "recall", "f1": "F1"}
    colours = {"precision": "tab:blue", "recall": "tab:orange", "f1": "tab:green"}

    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(present) + 2.0), 4.4),
                               constrained_layout=True)
        x = np.arange(len(present))
        width = 0.27
        for j, score in enumerate(scores):
            values = [per_class[c][score] for c in present]
            bars = ax.bar(x + (j - 1) * width, values, width, color=colours[score],
                          label=names[score])
            ax.bar_label(bars, labels=[f"{v:.2f}" for v in values], fontsize=9,
                         rotation=90, padding=2)
        if not present:
            ax.text(0.5, 0.5, "No classes present", transform=ax.transAxes, ha="center")
        ax.set_xticks(x, [f"{c}\n(n={per_class[c]['support']})" for c in present])
        extra = max(0.0, (3 - len(present)) / 2)
        ax.set_xlim(-0.6 - extra, len(present) - 0.4 + extra)
        ax.set_ylim(0, 1.13)
        ax.set_yticks(np.linspace(0, 1, 6))
        ax.set_ylabel("score")
        ax.grid(True, axis="y", alpha=0.3)
        ax.set_axisbelow(True)
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, frameon=False)
        fig.suptitle(f"Per-class scores: {metrics.get('dataset', '?')} set, seed "
                     f"{metrics.get('seed', '?')}", fontsize=13)
        if absent:
            note = "Absent from this set (no images, scores undefined): " + ", ".join(absent)
            ax.set_xlabel(textwrap.fill(note, 90), fontsize=10, color="0.3", labelpad=8)
        style.save_figure(fig, out)


def _fmt(x: float | None, spec: str) -> str:
    """`x` formatted with `spec`, or 'n/a' when missing."""
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def plot_reliability(metrics: dict, out: str | Path) -> None:
    """Reliability diagram of ``metrics["calibration"]``: per-bin accuracy against confidence
    with the calibration gap, and below it the number of images per confidence bin."""
    cal = required_key(metrics, "calibration", "metrics")
    bins = required_key(cal, "bins", "metrics.calibration")
    if not bins:
        raise LeukoError("metrics.calibration: no bins")
    rows = []
    for i, b in enumerate(bins):
        where = f"metrics.calibration.bins[{i}]"
        lower, upper, count = (required_key(b, k, where) for k in ("lower", "upper", "count"))
        conf, acc = b.get("confidence"), b.get("accuracy")
        filled = bool(count) and conf is not None and acc is not None
        try:
            rows.append((float(lower), float(upper), int(count or 0),
                         float(conf) if filled else None, float(acc) if filled else None))
        except (TypeError, ValueError):
            raise LeukoError(f"{where}: non-numeric lower, upper, count, confidence or "
                             f"accuracy") from None
    total = sum(r[2] for r in rows)
    if total == 0:
        raise LeukoError("metrics.calibration: every bin is empty (no images)")
    filled = [r for r in rows if r[3] is not None]

    with plt.rc_context(STYLE):
        fig, (ax, ax_n) = plt.subplots(2, 1, figsize=(8, 6.6), sharex=True, height_ratios=[3, 1.1],
                                       constrained_layout=True)
        ax.plot([0, 1], [0, 1], ls="--", color="0.35", lw=1.2, label="perfect calibration")
        lefts = [r[0] for r in filled]
        widths = [r[1] - r[0] for r in filled]
        accs = [r[4] for r in filled]
        confs = [r[3] for r in filled]
        ax.bar(lefts, accs, widths, align="edge", color="tab:blue", alpha=0.85,
               edgecolor="white", linewidth=0.8, label="accuracy in bin")
        ax.bar(lefts, [c - a for c, a in zip(confs, accs)], widths, bottom=accs, align="edge",
               facecolor=(0.84, 0.15, 0.16, 0.15), edgecolor="darkred", hatch="///",
               linewidth=1.0, label="gap: accuracy to mean confidence")
        ax.plot(confs, accs, "o", color="black", ms=4, label="(mean confidence, accuracy)")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_ylabel("accuracy")
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.grid(True, alpha=0.3)
        ax.set_axisbelow(True)
        ax.legend(loc="upper left", frameon=True, framealpha=0.9)
        summary = (f"ECE {_fmt(cal.get('ece'), '.1%')}\nBrier {_fmt(cal.get('brier'), '.3f')}\n"
                   f"log loss {_fmt(cal.get('log_loss'), '.3f')}\n{total} images, "
                   f"{len(rows)} bins")
        ax.text(0.97, 0.04, summary, transform=ax.transAxes, ha="right", va="bottom",
                fontsize=11, linespacing=1.4,
                bbox={"boxstyle": "round,pad=0.4", "facecolor": "white", "edgecolor": "0.7"})

        used = [r for r in rows if r[2] > 0]
        bars = ax_n.bar([r[0] for r in used], [r[2] for r in used], [r[1] - r[0] for r in used],
                        align="edge", color="0.55", edgecolor="white", linewidth=0.8)
        ax_n.bar_label(bars, labels=[str(r[2]) for r in used], fontsize=10, padding=1)
        style.log_axis(ax_n, "y")  # plain tick labels: 1, 10, 100
        ax_n.set_ylim(0.7, max(r[2] for r in used) * 4)
        ax_n.set_ylabel("images\n(log scale)")
        ax_n.set_xlabel("confidence (probability of the predicted class)")
        ax_n.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax_n.grid(True, axis="y", alpha=0.3)
        ax_n.set_axisbelow(True)
        fig.suptitle(f"Reliability: {metrics.get('dataset', '?')} set, seed "
                     f"{metrics.get('seed', '?')}", fontsize=13)
        style.save_figure(fig, out)
