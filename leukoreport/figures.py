"""Figures of the report: confusion matrix, loss curves, per-class scores, error gallery."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator, PercentFormatter  # noqa: E402
from PIL import Image  # noqa: E402

from leukoreport.errors import LeukoError  # noqa: E402
from leukoreport.metrics import misclassified  # noqa: E402

DPI = 150
STYLE = {"font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11,
         "xtick.labelsize": 10, "ytick.labelsize": 10, "legend.fontsize": 10}
THUMB_PX = 256


def _save(fig: Figure, out: str | Path) -> None:
    """Write `fig` as a PNG (150 dpi, tight bbox), creating parents, and close it."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(out, dpi=DPI, bbox_inches="tight", format="png")
    finally:
        plt.close(fig)


def _key(d: dict, key: str, where: str):
    """d[key], or LeukoError naming `where` and the key."""
    if key not in d:
        raise LeukoError(f"{where}: missing key '{key}'")
    return d[key]


def plot_confusion(metrics: dict, out: str | Path) -> None:
    """Counts and row-normalised confusion matrices side by side; absent rows blank."""
    cm = _key(metrics, "confusion_matrix", "metrics")
    labels = list(_key(cm, "labels", "metrics.confusion_matrix"))
    counts = np.asarray(_key(cm, "matrix", "metrics.confusion_matrix"), dtype=float)
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
        fig.suptitle(f"Confusion matrix: {metrics.get('dataset', '?')} set, seed "
                     f"{metrics.get('seed', '?')}, accuracy {acc}{n_part}", fontsize=13)
        _save(fig, out)


def _phase_spans(history: pd.DataFrame) -> list[tuple[int, float, float]]:
    """(phase, first epoch, last epoch) for each phase in history order."""
    spans = []
    for phase, rows in history.groupby("phase", sort=False):
        spans.append((int(phase), float(rows["epoch"].min()), float(rows["epoch"].max())))
    return sorted(spans, key=lambda s: s[1])


def plot_loss_curves(history: pd.DataFrame, train_info: dict, out: str | Path) -> None:
    """Train/valid loss and valid accuracy over the global epoch axis, phases and best epochs marked."""
    needed = ["phase", "epoch", "train_loss", "valid_loss", "accuracy"]
    missing = [c for c in needed if c not in history.columns]
    if missing:
        raise LeukoError(f"history: missing column(s) {missing}")
    if history.empty:
        raise LeukoError("history: no rows")
    phases = _key(train_info, "phases", "train.json")
    history = history.sort_values("epoch")
    epochs = history["epoch"].to_numpy(dtype=float)
    frozen = {int(p["phase"]): p.get("frozen") for p in phases if "phase" in p}

    def phase_name(phase: int) -> str:
        state = {True: " (frozen)", False: " (unfrozen)"}.get(frozen.get(phase), "")
        return f"phase {phase}{state}"

    colours = ["tab:purple", "tab:green", "tab:brown", "tab:pink"]
    with plt.rc_context(STYLE):
        fig, (ax_loss, ax_acc) = plt.subplots(
            2, 1, figsize=(8, 6.2), sharex=True, height_ratios=[3, 2], constrained_layout=True)
        ax_loss.plot(epochs, history["train_loss"], "o-", color="tab:blue", ms=4, label="train loss")
        ax_loss.plot(epochs, history["valid_loss"], "s-", color="tab:orange", ms=4,
                     label="valid loss")
        ax_acc.plot(epochs, history["accuracy"], "o-", color="tab:red", ms=4,
                    label="valid accuracy")

        spans = _phase_spans(history)
        strip = ax_loss.get_xaxis_transform()
        for (p1, _, end1), (p2, start2, _) in zip(spans, spans[1:]):
            boundary = (end1 + start2) / 2
            for ax in (ax_loss, ax_acc):
                ax.axvline(boundary, color="0.3", ls="--", lw=1.2)
            for text, dx, ha in ((f"\u2190 {phase_name(p1)}", -4, "right"),
                                 (f"{phase_name(p2)} \u2192", 4, "left")):
                ax_loss.annotate(text, xy=(boundary, 1.0), xycoords=strip, xytext=(dx, 3),
                                 textcoords="offset points", ha=ha, va="bottom",
                                 fontsize=10.5, color="0.15", annotation_clip=False)
        if len(spans) == 1:
            ax_loss.annotate(phase_name(spans[0][0]), xy=(0, 1.0), xycoords="axes fraction",
                             xytext=(0, 3), textcoords="offset points", ha="left",
                             va="bottom", fontsize=10.5, color="0.15")

        for i, p in enumerate(phases):
            best = p.get("best_epoch")
            row = history[history["epoch"] == best]
            if best is None or row.empty:
                continue
            colour = colours[i % len(colours)]
            label = f"restored best, phase {p.get('phase', i + 1)} (epoch {int(best)})"
            ax_loss.plot([best], [row["valid_loss"].iloc[0]], "*", ms=16, color=colour,
                         mec="black", mew=0.7, zorder=5, label=label)
            ax_acc.plot([best], [row["accuracy"].iloc[0]], "*", ms=16, color=colour,
                        mec="black", mew=0.7, zorder=5)
            for ax in (ax_loss, ax_acc):
                ax.axvline(best, color=colour, ls=":", lw=1.2)

        ax_loss.set_ylabel("cross-entropy loss")
        handles = ax_loss.get_legend_handles_labels()[0]
        handles = handles[:2] + ax_acc.get_legend_handles_labels()[0] + handles[2:]
        fig.legend(handles=handles, loc="outside lower center", ncol=2, frameon=False)
        ax_acc.set_ylabel("valid accuracy")
        ax_acc.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax_acc.set_xlabel("epoch (both phases)")
        ax_acc.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax_acc.set_xlim(epochs.min() - 0.5, epochs.max() + 0.5)
        for ax in (ax_loss, ax_acc):
            ax.grid(True, alpha=0.3)
        seed = train_info.get("seed")
        fig.suptitle("Training curves" + (f", seed {seed}" if seed is not None else ""),
                     fontsize=13)
        _save(fig, out)


def plot_per_class(metrics: dict, out: str | Path) -> None:
    """Grouped bars of precision, recall and F1 for the present classes; absent ones in a note."""
    per_class = _key(metrics, "per_class", "metrics")
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
        _save(fig, out)


def _thumbnail(path: Path) -> Image.Image:
    """The image at `path` as a small RGB thumbnail; LeukoError naming it if unreadable."""
    try:
        with Image.open(path) as img:
            thumb = img.convert("RGB")
    except (OSError, ValueError) as exc:
        raise LeukoError(f"{path}: cannot open image: {exc}") from None
    thumb.thumbnail((THUMB_PX, THUMB_PX))
    return thumb


def _gallery_page(page: pd.DataFrame, first: int, n_errors: int, n_images: int, root: Path,
                  columns: int, out: Path) -> None:
    """One page of the error gallery: thumbnails with true label, prediction and confidence."""
    ncols = min(columns, len(page))
    nrows = math.ceil(len(page) / ncols)
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(nrows, ncols, figsize=(1.7 * ncols, 2.3 * nrows + 0.4),
                                 squeeze=False, layout="constrained")
        fig.get_layout_engine().set(w_pad=0.1, h_pad=0.06)
        for ax in axes.flat:
            ax.axis("off")
        for ax, (_, row) in zip(axes.flat, page.iterrows()):
            ax.imshow(_thumbnail(root / str(row["path"])))
            ax.set_title(f"true: {row['label']}\npred: {row['prediction']} "
                         f"({row['confidence']:.0%})", fontsize=10, pad=3)
            ax.text(0.5, -0.03, Path(str(row["path"])).name, transform=ax.transAxes,
                    ha="center", va="top", fontsize=7.5, color="0.3")
        span = f"{first + 1}–{first + len(page)} of " if len(page) < n_errors else ""
        fig.suptitle(f"Misclassified images: {span}{n_errors} errors in {n_images} images", fontsize=13)
        _save(fig, out)


def plot_error_gallery(pred: pd.DataFrame, classes: list[str], out_dir: str | Path,
                       root: str | Path = ".", columns: int = 6, rows: int = 5) -> int:
    """Every misclassified image, most confident first, on pages ``out_dir/page-NN.png`` of
    ``columns x rows`` thumbnails (one page saying so when there are none); returns the count."""
    missing = [c for c in ("path", "label", "prediction") if c not in pred.columns]
    if missing:
        raise LeukoError(f"predictions: missing column(s) {missing}")
    if columns < 1 or rows < 1:
        raise LeukoError(f"error gallery: columns and rows must be at least 1, got {columns}, {rows}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("page-*.png"):
        old.unlink()
    n_errors = int((pred["label"] != pred["prediction"]).sum())

    if n_errors == 0:
        with plt.rc_context(STYLE):
            fig = plt.figure(figsize=(4.5, 1.0))
            fig.text(0.5, 0.5, f"No misclassified images ({len(pred)} images)",
                     ha="center", va="center", fontsize=13)
            _save(fig, out_dir / "page-01.png")
        return 0

    wrong = pred[pred["label"] != pred["prediction"]]
    for c in set(wrong["prediction"]) | set(wrong["label"]):
        if c not in classes:
            raise LeukoError(f"predictions: class '{c}' is not among {classes}")
        if f"prob_{c}" not in pred.columns:
            raise LeukoError(f"predictions: missing column 'prob_{c}'")
    errors = misclassified(pred)
    per_page = columns * rows
    for number, first in enumerate(range(0, n_errors, per_page), start=1):
        page = errors.iloc[first:first + per_page]
        _gallery_page(page, first, n_errors, len(pred), Path(root), columns, out_dir / f"page-{number:02d}.png")
    return n_errors
