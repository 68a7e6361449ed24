"""Figures of the report: confusion matrix, loss curves, per-class scores, calibration, galleries."""

from __future__ import annotations

import io
import math
import numbers
import textwrap
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.collections import LineCollection, PathCollection  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch, Rectangle  # noqa: E402
from matplotlib.ticker import MaxNLocator, PercentFormatter  # noqa: E402
from matplotlib.transforms import Bbox  # noqa: E402
from PIL import Image  # noqa: E402

from leukoreport.base.errors import LeukoError  # noqa: E402
from leukoreport.base.atomic_io import write_json  # noqa: E402
from leukoreport.stats.metrics import misclassified  # noqa: E402

DPI = 150
# Every figure is drawn inside one of these styles. File, folder, class and set names come from the user and
# may hold '$' (matplotlib's mathtext): all text is drawn literally, whatever it holds.
LITERAL_TEXT = {"text.parse_math": False}
STYLE = {"font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11,
         "xtick.labelsize": 10, "ytick.labelsize": 10, "legend.fontsize": 10, **LITERAL_TEXT}
THUMB_PX = 256
# Images (and table rows) the report shows per seed and dataset; config key `report_limits` overrides them.
# Every item stays in the CSV beside the figure (predictions.csv, leakage.csv, agreement.csv, label_issues.csv).
REPORT_LIMITS = {"errors": 24, "error_rows": 20, "pairs": 8, "pair_rows": 24, "agreement": 18,
                 "label_rows": 10}
GALLERY_META = "gallery.json"
# for figures about 10 inches wide: still about 8 pt when scaled to the 16.5 cm text width
WIDE_STYLE = {"font.size": 13, "axes.titlesize": 13, "axes.labelsize": 13,
              "xtick.labelsize": 12, "ytick.labelsize": 12, "legend.fontsize": 12, **LITERAL_TEXT}


def _save(fig: Figure, out: str | Path, palette: bool = False) -> None:
    """Write `fig` as a PNG (150 dpi, tight bbox), creating parents, and close it. With `palette` (photo
    galleries) the PNG holds 256 dithered colours: about a fifth of the bytes, the cells look the same."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        if not palette:
            fig.savefig(out, dpi=DPI, bbox_inches="tight", format="png")
            return
        buffer = io.BytesIO()
        fig.savefig(buffer, dpi=DPI, bbox_inches="tight", format="png")
    finally:
        plt.close(fig)
    buffer.seek(0)
    with Image.open(buffer) as img:
        img.convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(out, format="PNG",
                                                                                       optimize=True)


def note_figure(text: str, out: str | Path, width: float = 5.0) -> None:
    """A one-line figure saying `text` (a gallery with nothing to show), drawn literally."""
    with plt.rc_context(STYLE):
        fig = plt.figure(figsize=(width, 1.0))
        fig.text(0.5, 0.5, text, ha="center", va="center", fontsize=13)
        _save(fig, out)


def report_limits(config: dict | None = None) -> dict[str, int]:
    """REPORT_LIMITS updated with ``config["report_limits"]``; LeukoError naming a bad or unknown key."""
    given = (config or {}).get("report_limits") or {}
    if not isinstance(given, dict):
        raise LeukoError(f"report_limits: must be a mapping, got {given!r}")
    limits = dict(REPORT_LIMITS)
    for key, value in given.items():
        if key not in REPORT_LIMITS:
            raise LeukoError(f"report_limits: unknown key '{key}' (known: {', '.join(REPORT_LIMITS)})")
        limits[key] = _positive_limit(value, f"report_limits.{key}")
    return limits


def _positive_limit(value: object, name: str) -> int:
    """`value` as a positive int, or LeukoError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise LeukoError(f"{name}: must be a positive integer, got {value!r}")
    return int(value)


def left_out_text(shown: int, total: int, noun: str, listed_in: str) -> str:
    """The sentence under a capped gallery or table: 'showing 30 of 750 misclassified images (720 not
    shown); all are listed in predictions.csv'; '' when nothing is left out."""
    if shown >= total:
        return ""
    return f"showing {shown} of {total} {noun} ({total - shown} not shown); all are listed in {listed_in}"


def write_gallery_meta(path: str | Path, total: int, paths: list[str], noun: str, listed_in: str,
                       order: str, titles: list[str], **extra) -> dict:
    """Write what a gallery shows as JSON beside it (``total``, ``shown``, ``not_shown``, the
    left-out ``note``, ``order``, the page ``titles`` and the drawn ``paths`` in order); returns it."""
    meta = {"total": int(total), "shown": len(paths), "not_shown": int(total) - len(paths), "noun": noun,
            "listed_in": listed_in, "order": order,
            "note": left_out_text(len(paths), int(total), noun, listed_in), "titles": titles,
            "paths": [str(p) for p in paths], **extra}
    write_json(meta, path)
    return meta


def _key(d: dict, key: str, where: str):
    """d[key], or LeukoError naming `where` and the key."""
    if key not in d:
        raise LeukoError(f"{where}: missing key '{key}'")
    return d[key]


def plot_confusion(metrics: dict, out: str | Path, title: str | None = None) -> None:
    """Counts and row-normalised confusion matrices side by side; absent rows blank.
    `title` replaces the computed suptitle (data set, seed, accuracy) when given."""
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
        if title is None:
            title = (f"Confusion matrix: {metrics.get('dataset', '?')} set, seed "
                     f"{metrics.get('seed', '?')}, accuracy {acc}{n_part}")
        fig.suptitle(title, fontsize=13)
        _save(fig, out)


def _phase_spans(history: pd.DataFrame) -> list[tuple[int, float, float]]:
    """(phase, first epoch, last epoch) for each phase in history order."""
    spans = []
    for phase, rows in history.groupby("phase", sort=False):
        spans.append((int(phase), float(rows["epoch"].min()), float(rows["epoch"].max())))
    return sorted(spans, key=lambda s: s[1])


def _has_values(df: pd.DataFrame, column: str) -> bool:
    """Whether `df` has `column` with at least one numeric, non-missing value."""
    return column in df.columns and pd.to_numeric(df[column], errors="coerce").notna().any()


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
        has_train_acc = _has_values(history, "train_accuracy")
        if has_train_acc:
            ax_acc.plot(epochs, pd.to_numeric(history["train_accuracy"], errors="coerce"), "^--",
                        color="tab:gray", ms=4, label="train accuracy (augmented batches)")

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
        ax_acc.set_ylabel("accuracy" if has_train_acc else "valid accuracy")
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


CellTitle = Callable[[pd.Series], tuple[str, str | None]]


def _short_name(path: object, limit: int = 28) -> str:
    """The file name of `path`, shortened in the middle with an ellipsis when longer than `limit`."""
    name = Path(str(path)).name
    if len(name) <= limit:
        return name
    half = (limit - 1) // 2
    return name[:half] + "\u2026" + name[-(limit - 1 - half):]


def _gallery_page(page: pd.DataFrame, root: Path, columns: int, out: Path, suptitle: str,
                  cell_title: CellTitle, cell_size: tuple[float, float] = (1.7, 2.3),
                  title_size: float = 10, name_size: float = 7.5,
                  name_limit: int | None = None,
                  badge: Callable[[pd.Series], str] | None = None,
                  suptitle_size: float = 13) -> list[str]:
    """One gallery page: a thumbnail per row of `page` titled by ``cell_title(row)`` (text and
    colour; a colour also frames the thumbnail and backs the ``badge(row)`` word written on it),
    the file name (cut to `name_limit`) below in grey; returns the paths drawn, in order."""
    drawn: list[str] = []
    ncols = min(columns, len(page))
    nrows = math.ceil(len(page) / ncols)
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(nrows, ncols,
                                 figsize=(cell_size[0] * ncols, cell_size[1] * nrows + 0.4),
                                 squeeze=False, layout="constrained")
        fig.get_layout_engine().set(w_pad=0.1, h_pad=0.06)
        for ax in axes.flat:
            ax.axis("off")
        for ax, (_, row) in zip(axes.flat, page.iterrows()):
            ax.imshow(_thumbnail(root / str(row["path"])))
            drawn.append(str(row["path"]))
            text, colour = cell_title(row)
            ax.set_title(text, fontsize=title_size, pad=3, **({"color": colour} if colour else {}))
            if colour:
                ax.add_patch(Rectangle((0, 0), 1, 1, transform=ax.transAxes, fill=False,
                                       edgecolor=colour, linewidth=2.5, clip_on=False))
            if badge is not None:
                ax.text(0.03, 0.97, badge(row), transform=ax.transAxes, ha="left", va="top",
                        fontsize=title_size - 1, fontweight="bold", color="white",
                        bbox={"boxstyle": "square,pad=0.25", "facecolor": colour or "0.2",
                              "edgecolor": "none"})
            name = _short_name(row["path"], name_limit) if name_limit else Path(str(row["path"])).name
            ax.text(0.5, -0.03, name, transform=ax.transAxes,
                    ha="center", va="top", fontsize=name_size, color="0.3")
        fig.suptitle(suptitle, fontsize=suptitle_size)
        _save(fig, out, palette=True)
    return drawn


def _error_title(row: pd.Series) -> tuple[str, None]:
    """Error-gallery cell title: true label, prediction and its confidence."""
    return f"true: {row['label']}\npred: {row['prediction']} ({row['confidence']:.0%})", None


def plot_error_gallery(pred: pd.DataFrame, classes: list[str], out_dir: str | Path,
                       root: str | Path = ".", columns: int = 6, rows: int = 5,
                       limit: int | None = REPORT_LIMITS["errors"]) -> int:
    """The `limit` most confident misclassified images (all when `limit` is None), most confident
    first, on pages ``out_dir/page-NN.png`` of ``columns x rows`` thumbnails (one page saying so
    when there are none); each title says how many are not shown. What was drawn goes to
    ``out_dir/gallery.json`` (write_gallery_meta); returns the number of errors."""
    missing = [c for c in ("path", "label", "prediction") if c not in pred.columns]
    if missing:
        raise LeukoError(f"predictions: missing column(s) {missing}")
    if columns < 1 or rows < 1:
        raise LeukoError(f"error gallery: columns and rows must be at least 1, got {columns}, {rows}")
    if limit is not None:
        limit = _positive_limit(limit, "error gallery: limit")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("page-*.png"):
        old.unlink()
    n_errors = int((pred["label"] != pred["prediction"]).sum())
    noun, listed_in, order = "misclassified images", "predictions.csv", "most confident first"

    if n_errors == 0:
        title = f"No misclassified images ({len(pred)} images)"
        note_figure(title, out_dir / "page-01.png", 4.5)
        write_gallery_meta(out_dir / GALLERY_META, 0, [], noun, listed_in, order, [title])
        return 0

    wrong = pred[pred["label"] != pred["prediction"]]
    for c in set(wrong["prediction"]) | set(wrong["label"]):
        if c not in classes:
            raise LeukoError(f"predictions: class '{c}' is not among {classes}")
        if f"prob_{c}" not in pred.columns:
            raise LeukoError(f"predictions: missing column 'prob_{c}'")
    errors = misclassified(pred)
    if limit is not None:
        errors = errors.head(limit)
    shown = len(errors)
    note = left_out_text(shown, n_errors, noun, listed_in)
    per_page = columns * rows
    titles, drawn = [], []
    for number, first in enumerate(range(0, shown, per_page), start=1):
        page = errors.iloc[first:first + per_page]
        span = f"{first + 1}–{first + len(page)} of " if per_page < shown else ""
        title = (f"Misclassified images: {span}{n_errors} errors in {len(pred)} images"
                 + (f", {order}\n{note}" if note else ""))
        titles.append(title)
        drawn += _gallery_page(page, Path(root), columns, out_dir / f"page-{number:02d}.png", title,
                               _error_title)
    write_gallery_meta(out_dir / GALLERY_META, n_errors, drawn, noun, listed_in, order, titles)
    return n_errors


def _fmt(x: float | None, spec: str) -> str:
    """`x` formatted with `spec`, or 'n/a' when missing."""
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def plot_reliability(metrics: dict, out: str | Path) -> None:
    """Reliability diagram of ``metrics["calibration"]``: per-bin accuracy against confidence
    with the calibration gap, and below it the number of images per confidence bin."""
    cal = _key(metrics, "calibration", "metrics")
    bins = _key(cal, "bins", "metrics.calibration")
    if not bins:
        raise LeukoError("metrics.calibration: no bins")
    rows = []
    for i, b in enumerate(bins):
        where = f"metrics.calibration.bins[{i}]"
        lower, upper, count = (_key(b, k, where) for k in ("lower", "upper", "count"))
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
        ax_n.set_yscale("log")
        ax_n.set_ylim(0.7, max(r[2] for r in used) * 4)
        ax_n.set_ylabel("images\n(log scale)")
        ax_n.set_xlabel("confidence (probability of the predicted class)")
        ax_n.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax_n.grid(True, axis="y", alpha=0.3)
        ax_n.set_axisbelow(True)
        fig.suptitle(f"Reliability: {metrics.get('dataset', '?')} set, seed "
                     f"{metrics.get('seed', '?')}", fontsize=13)
        _save(fig, out)


def top_loss_rows(pred: pd.DataFrame, k: int) -> pd.DataFrame:
    """The `k` rows of `pred` with the highest ``loss`` (all rows when fewer), highest first,
    ties by path."""
    missing = [c for c in ("path", "loss") if c not in pred.columns]
    if missing:
        raise LeukoError(f"predictions: missing column(s) {missing}")
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise LeukoError(f"top losses: k must be a positive integer, got {k!r}")
    loss = pd.to_numeric(pred["loss"], errors="coerce")
    if loss.isna().any():
        raise LeukoError("predictions: column 'loss' has missing or non-numeric values")
    order = (pred.assign(_loss=loss, _path=pred["path"].astype(str))
             .sort_values(["_loss", "_path"], ascending=[False, True], kind="stable"))
    return order.drop(columns=["_loss", "_path"]).head(k)


def _loss_title(row: pd.Series) -> tuple[str, str]:
    """Top-loss cell title: true label, prediction, its probability and the loss; colour by
    correctness (the gallery also writes 'correct'/'wrong' on the thumbnail)."""
    p, loss = float(row[f"prob_{row['prediction']}"]), float(row["loss"])
    return (f"true: {row['label']}\npred: {row['prediction']}\n"
            f"p={p:.2f} \u00b7 loss {loss:.{2 if loss < 10 else 1}f}",
            "darkgreen" if row["label"] == row["prediction"] else "darkred")


def _loss_badge(row: pd.Series) -> str:
    """The word written on a top-loss thumbnail."""
    return "correct" if row["label"] == row["prediction"] else "wrong"


def plot_top_losses(pred: pd.DataFrame, classes: list[str], out: str | Path,
                    root: str | Path = ".", k: int = 30, columns: int = 6) -> None:
    """One page of the `k` images with the highest loss (right or wrong), highest first."""
    missing = [c for c in ("path", "label", "prediction", "loss") if c not in pred.columns]
    if missing:
        raise LeukoError(f"predictions: missing column(s) {missing}")
    if pred.empty:
        raise LeukoError("predictions: no rows")
    if isinstance(columns, bool) or not isinstance(columns, numbers.Integral) or columns < 1:
        raise LeukoError(f"top losses: columns must be a positive integer, got {columns!r}")
    top = top_loss_rows(pred, k)
    for c in set(top["prediction"]) | set(top["label"]):
        if c not in classes:
            raise LeukoError(f"predictions: class '{c}' is not among {classes}")
    for c in set(top["prediction"]):
        if f"prob_{c}" not in pred.columns:
            raise LeukoError(f"predictions: missing column 'prob_{c}'")
    wrong = int((top["label"] != top["prediction"]).sum())
    title = (f"Top {len(top)} losses of {len(pred)} images "
             f"({wrong} wrong, {len(top) - wrong} correct), highest first")
    _gallery_page(top, Path(root), columns, Path(out), title, _loss_title,
                  cell_size=(1.8, 2.85), title_size=13, name_size=11, name_limit=20,
                  badge=_loss_badge, suptitle_size=15)


PAIR_COLUMNS = ["path_a", "label_a", "group_a", "path_b", "label_b", "group_b", "distance",
                "kind", "scope", "same_label"]


def _distance_text(d: object) -> str:
    """A pair distance as a short number: integers without decimals."""
    try:
        value = float(d)
    except (TypeError, ValueError):
        return str(d)
    return f"{value:.0f}" if value.is_integer() else f"{value:.3g}"


def _truthy(value: object) -> bool:
    """A same_label flag as bool; the strings 'False', 'false' and '0' are false."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def _image_caption(group: object, label: object, width: int = 24) -> str:
    """'group · label' on one line when it fits in `width` characters, else group (shortened
    in the middle past 28 characters) and label on two lines."""
    text = f"{group} \u00b7 {label}"
    return text if len(text) <= width else f"{_short_name(group, 28)}\n{label}"


# most informative first: pairs that leak between training and evaluation data before duplicates within a set
PAIR_SCOPE_ORDER = ("across splits", "training vs external", "within split", "within external",
                    "across external sets")
PAIR_ORDER = ("exact before near, different labels first, across splits and training vs external before "
              "within a set, then by distance")


def pair_rows(pairs: pd.DataFrame, limit: int | None = None) -> pd.DataFrame:
    """The pairs of a leakage table most informative first (PAIR_ORDER; ties keep the table's order),
    with ``number``, the pair's row in the table (1 = first), at most `limit` of them (all when None)."""
    missing = [c for c in ("kind", "scope", "distance", "same_label") if c not in pairs.columns]
    if missing:
        raise LeukoError(f"pairs: missing column(s) {missing}")
    if limit is not None:
        limit = _positive_limit(limit, "pairs: limit")
    distance = pd.to_numeric(pairs["distance"], errors="coerce")
    if distance.isna().any():
        raise LeukoError("pairs: column 'distance' has missing or non-numeric values")
    scopes = {s: i for i, s in enumerate(PAIR_SCOPE_ORDER)}
    order = pairs.reset_index(drop=True).assign(
        number=range(1, len(pairs) + 1),
        _kind=[0 if str(k) == "exact" else 1 for k in pairs["kind"]],
        _same=[int(_truthy(v)) for v in pairs["same_label"]],
        _scope=[scopes.get(str(v), len(scopes)) for v in pairs["scope"]],
        _distance=distance.to_numpy())
    order = order.sort_values(["_kind", "_same", "_scope", "_distance", "number"], kind="stable")
    order = order.drop(columns=["_kind", "_same", "_scope", "_distance"])
    return order if limit is None else order.head(limit)


def _pair_page(page: pd.DataFrame, title: str, root: Path, out: Path) -> list[str]:
    """One page of the pair gallery: two pairs per row, each pair boxed with its caption (``#number``:
    the pair's row in leakage.csv); returns the paths drawn, a then b."""
    nrows = math.ceil(len(page) / 2)
    drawn: list[str] = []
    with plt.rc_context(STYLE):
        fig = plt.figure(figsize=(9.2, 3.3 * nrows + 0.5), layout="constrained")
        subfigs = np.atleast_2d(fig.subfigures(nrows, 2, wspace=0.05, hspace=0.03))
        for sub in subfigs.flat[len(page):]:
            sub.set_facecolor("none")
        for sub, (_, row) in zip(subfigs.flat, page.iterrows()):
            same = _truthy(row["same_label"])
            colour = "black" if same else "darkred"
            sub.set_facecolor("0.93")
            axes = sub.subplots(1, 2)
            for ax, side in zip(axes, "ab"):
                ax.axis("off")
                ax.imshow(_thumbnail(root / str(row[f"path_{side}"])))
                drawn.append(str(row[f"path_{side}"]))
                ax.set_title(_image_caption(row[f"group_{side}"], row[f"label_{side}"]),
                             fontsize=11.5, pad=3, color=colour)
                ax.text(0.5, -0.03, _short_name(row[f"path_{side}"], 24), transform=ax.transAxes,
                        ha="center", va="top", fontsize=10.5, color="0.3")
            caption = (f"#{row['number']} {row['kind']}, d={_distance_text(row['distance'])} "
                       f"\u00b7 {row['scope']}")
            if not same:
                caption += "\nlabels differ"
            sub.suptitle(caption, fontsize=12, fontweight="bold", color=colour)
        fig.suptitle(title, fontsize=13.5)
        _save(fig, out, palette=True)
    return drawn


def plot_pair_gallery(pairs: pd.DataFrame, out_dir: str | Path, root: str | Path = ".",
                      per_page: int = 8, n_images: int | None = None,
                      limit: int | None = REPORT_LIMITS["pairs"]) -> int:
    """The `limit` most informative duplicate pairs of the leakage audit (pair_rows; all when None) on
    pages ``out_dir/page-NN.png`` of `per_page` pairs (one page saying so when there are none); each
    title says how many are not shown. What was drawn goes to ``out_dir/gallery.json``
    (write_gallery_meta, with the pairs' leakage.csv ``rows``); returns the number of pairs."""
    missing = [c for c in PAIR_COLUMNS if c not in pairs.columns]
    if missing:
        raise LeukoError(f"pairs: missing column(s) {missing}")
    if isinstance(per_page, bool) or not isinstance(per_page, numbers.Integral) or per_page < 1:
        raise LeukoError(f"pair gallery: per_page must be a positive integer, got {per_page!r}")
    shown = pair_rows(pairs, limit)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("page-*.png"):
        old.unlink()
    n_pairs = len(pairs)
    noun, listed_in = "duplicate pairs", "leakage.csv"
    if n_pairs == 0:
        checked = f" ({n_images} images checked)" if n_images is not None else ""
        title = f"No duplicate pairs found{checked}"
        note_figure(title, out_dir / "page-01.png", 5.5)
        write_gallery_meta(out_dir / GALLERY_META, 0, [], noun, listed_in, PAIR_ORDER, [title], rows=[])
        return 0
    kinds = pairs["kind"].astype(str).value_counts()
    order = sorted(kinds.index, key=lambda k: ({"exact": 0, "near": 1}.get(k, 2), k))
    counts = ", ".join(f"{kinds[k]} {k}" for k in order)
    note = left_out_text(len(shown), n_pairs, noun, listed_in)
    n_pages = math.ceil(len(shown) / per_page)
    titles, drawn = [], []
    for number, first in enumerate(range(0, len(shown), per_page), start=1):
        title = f"Duplicate image pairs: {n_pairs} pair{'s' * (n_pairs != 1)} ({counts})"
        if n_pages > 1:
            title += f", page {number} of {n_pages}"
        if note:
            title += f"\nmost informative first: {note}"
        titles.append(title)
        drawn += _pair_page(shown.iloc[first:first + per_page], title, Path(root),
                            out_dir / f"page-{number:02d}.png")
    write_gallery_meta(out_dir / GALLERY_META, n_pairs, drawn[0::2], noun, listed_in, PAIR_ORDER,
                       titles, rows=[int(n) for n in shown["number"]], paths_b=drawn[1::2])
    return n_pairs


SEED_HISTORY_COLUMNS = ["phase", "epoch", "train_loss", "valid_loss", "accuracy"]
SEEDS_PER_ROW = 8


def plot_seed_curves(histories: dict[int | str, pd.DataFrame], out: str | Path) -> None:
    """Loss and accuracy of every run over the global epoch axis, one colour per run,
    train dashed and valid solid, each run's phase boundary dotted.

    Keys are seeds (labelled 'seed N', sorted) or run labels such as 'split 42 · seed 1' (kept in order)."""
    if not histories:
        raise LeukoError("histories: no seeds")
    for seed, history in histories.items():
        missing = [c for c in SEED_HISTORY_COLUMNS if c not in history.columns]
        if missing:
            raise LeukoError(f"history of {_run_name(seed)}: missing column(s) {missing}")
        if history.empty:
            raise LeukoError(f"history of {_run_name(seed)}: no rows")
    seeds = sorted(histories) if all(isinstance(k, int) for k in histories) else list(histories)
    palette = plt.get_cmap("tab10" if len(seeds) <= 10 else "tab20").colors
    seed_rows = math.ceil(len(seeds) / SEEDS_PER_ROW)
    seed_cols = math.ceil(len(seeds) / seed_rows)
    key_rows = seed_rows + 1
    with plt.rc_context(WIDE_STYLE):
        fig = plt.figure(figsize=(10, 3.35 + 0.33 * key_rows), layout="constrained")
        grid = fig.add_gridspec(2, 2, height_ratios=[1, 0.125 * key_rows])
        ax_loss, ax_acc = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1])
        ax_key = fig.add_subplot(grid[1, :])
        ax_key.axis("off")
        for i, seed in enumerate(seeds):
            history = histories[seed].sort_values("epoch")
            colour = palette[i % len(palette)]
            epochs = history["epoch"].to_numpy(dtype=float)
            marker = "o" if len(history) <= 10 else ""  # few epochs: show the points too
            ax_loss.plot(epochs, history["train_loss"], marker + "--", color=colour, lw=1.4, ms=3)
            ax_loss.plot(epochs, history["valid_loss"], marker + "-", color=colour, lw=1.8, ms=3)
            ax_acc.plot(epochs, history["accuracy"], marker + "-", color=colour, lw=1.8, ms=3)
            if _has_values(history, "train_accuracy"):
                ax_acc.plot(epochs, pd.to_numeric(history["train_accuracy"], errors="coerce"),
                            marker + "--", color=colour, lw=1.4, ms=3)
            spans = _phase_spans(history)
            for (_, _, end1), (_, start2, _) in zip(spans, spans[1:]):
                for ax in (ax_loss, ax_acc):
                    ax.axvline((end1 + start2) / 2, color=colour, ls=":", lw=1.2, alpha=0.7)
        ax_loss.set_title("loss")
        ax_loss.set_ylabel("cross-entropy loss")
        ax_acc.set_title("accuracy")
        ax_acc.set_ylabel("accuracy")
        ax_acc.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        for ax in (ax_loss, ax_acc):
            ax.set_xlabel("epoch (all phases)")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(True, alpha=0.3)
        patches = [Patch(color=palette[i % len(palette)], label=_run_name(s))
                   for i, s in enumerate(seeds)]
        # the legend fills column by column: order the patches so that its rows read in seed order
        seed_handles = [patches[r * seed_cols + c] for c in range(seed_cols)
                        for r in range(seed_rows) if r * seed_cols + c < len(patches)]
        style_handles = [Line2D([], [], color="0.2", ls="-", lw=1.8, label="valid"),
                         Line2D([], [], color="0.2", ls="--", lw=1.4,
                                label="train (augmented batches)"),
                         Line2D([], [], color="0.2", ls=":", lw=1.2, label="phase boundary")]
        # two legend rows under the panels: seeds (colour), then line styles
        seed_legend = ax_key.legend(handles=seed_handles, loc="upper center",
                                    ncol=seed_cols, frameon=False, handlelength=1.6,
                                    columnspacing=1.4, borderaxespad=0.0)
        ax_key.add_artist(seed_legend)
        ax_key.legend(handles=style_handles, loc="lower center", ncol=3, frameon=False,
                      handlelength=2.2, columnspacing=1.6, borderaxespad=0.0)
        noun = "seed" if all(_run_name(k).startswith("seed ") for k in seeds) else "run"
        fig.suptitle(f"Training curves of {len(seeds)} {noun}{'s' * (len(seeds) != 1)}", fontsize=14)
        _save(fig, out)


def _run_name(key: int | str) -> str:
    """'seed 7' for a seed number, the label itself for a run label."""
    return f"seed {key}" if isinstance(key, int) else str(key)


SEED_METRICS = {"accuracy": "accuracy", "balanced_accuracy": "balanced\naccuracy",
                "macro_f1": "macro F1", "ece": "ECE"}


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
    for (category, y), members in groups.items():
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
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise LeukoError(f"seed table: missing column(s) {missing}")
    runs = table[table["dataset"].astype(str) == str(dataset)]
    if runs.empty:
        raise LeukoError(f"seed table: no rows for dataset '{dataset}'")
    if ensemble is not None:
        for key in [*SEED_METRICS, *(k for k in ensemble if str(k).startswith("recall_"))]:
            value = _key(ensemble, key, "ensemble")
            if value is not None and not isinstance(value, numbers.Real):
                raise LeukoError(f"ensemble: '{key}' must be a number, got {value!r}")
    runs = runs.sort_values(["split_seed", "seed"], kind="stable").reset_index(drop=True)
    classes = [c[len("recall_"):] for c in runs.columns
               if c.startswith("recall_") and _has_values(runs, c)]
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
                  (fig.add_subplot(grid[0, 1]), ["ece"], ["ECE"],
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
        _save(fig, out)


AGREEMENT_KINDS = {
    "always_wrong": ("Wrong in every run", "No images wrong in every run"),
    "unstable": ("Prediction changes between runs",
                 "No image changes its prediction between runs"),
}
AGREEMENT_NOUNS = {"always_wrong": ("images wrong in every run", "by path"),
                   "unstable": ("images whose prediction changes", "fewest runs right first")}


def _agreement_selected(agreement: pd.DataFrame, kind: str) -> pd.DataFrame:
    """All rows of `agreement` flagged `kind`, in gallery order (always_wrong by path; unstable
    by n_correct, then path)."""
    if kind not in AGREEMENT_KINDS:
        raise LeukoError(f"agreement gallery: kind must be one of {list(AGREEMENT_KINDS)}, "
                         f"got {kind!r}")
    needed = ["path", "label", "n_runs", "n_correct", "majority", kind]
    missing = [c for c in needed if c not in agreement.columns]
    if missing:
        raise LeukoError(f"agreement: missing column(s) {missing}")
    rows = agreement[[_truthy(v) for v in agreement[kind]]]
    for column in ("n_runs", "n_correct"):
        if pd.to_numeric(rows[column], errors="coerce").isna().any():
            raise LeukoError(f"agreement: column '{column}' has missing or non-numeric values")
    keys = ["_path"] if kind == "always_wrong" else ["_correct", "_path"]
    order = rows.assign(_path=rows["path"].astype(str),
                        _correct=pd.to_numeric(rows["n_correct"], errors="coerce"))
    return order.sort_values(keys, kind="stable").drop(columns=["_path", "_correct"])


def agreement_rows(agreement: pd.DataFrame, kind: str, limit: int = 30) -> pd.DataFrame:
    """The first `limit` rows flagged `kind` ('always_wrong' or 'unstable') in gallery order:
    always_wrong by path; unstable by n_correct (fewest right first), then path."""
    if isinstance(limit, bool) or not isinstance(limit, numbers.Integral) or limit < 1:
        raise LeukoError(f"agreement gallery: limit must be a positive integer, got {limit!r}")
    return _agreement_selected(agreement, kind).head(limit)


def _agreement_title(row: pd.Series) -> tuple[str, str]:
    """Agreement-gallery cell title: true label, runs right and the majority prediction; red when
    the majority is wrong."""
    right = f"right in {int(row['n_correct'])} of {int(row['n_runs'])}"
    colour = "darkgreen" if str(row["majority"]) == str(row["label"]) else "darkred"
    return f"true: {row['label']}\n{right}\nmostly: {row['majority']}", colour


def plot_agreement_gallery(agreement: pd.DataFrame, kind: str, out: str | Path,
                           root: str | Path = ".", limit: int = REPORT_LIMITS["agreement"],
                           columns: int = 6) -> int:
    """One page of the images wrong in every run (kind 'always_wrong') or whose prediction changes
    between runs ('unstable'), at most `limit` of them in agreement_rows order, the title saying how
    many are not shown (a small figure saying so when there are none); what was drawn goes to a JSON
    beside `out` (write_gallery_meta); returns how many images are flagged."""
    selected = _agreement_selected(agreement, kind)
    shown = agreement_rows(agreement, kind, limit)
    if isinstance(columns, bool) or not isinstance(columns, numbers.Integral) or columns < 1:
        raise LeukoError(f"agreement gallery: columns must be a positive integer, got {columns!r}")
    head, nothing = AGREEMENT_KINDS[kind]
    noun, order = AGREEMENT_NOUNS[kind]
    out = Path(out)
    total, n_selected = len(agreement), len(selected)
    if n_selected == 0:
        title = f"{nothing} ({total} images)"
        with plt.rc_context(STYLE):
            fig = plt.figure(figsize=(5.5, 1.0))
            fig.text(0.5, 0.5, title, ha="center", va="center", fontsize=13)
            _save(fig, out)
        write_gallery_meta(out.with_suffix(".json"), 0, [], noun, "agreement.csv", order, [title])
        return 0
    title = f"{head}: {n_selected} of {total} images"
    note = left_out_text(len(shown), n_selected, noun, "agreement.csv")
    if note:
        title += f"\n{note}"
    # "mostly: lymphocyte" is the widest title line: 12 pt keeps neighbouring titles apart
    drawn = _gallery_page(shown, Path(root), columns, out, title, _agreement_title,
                          cell_size=(1.8, 2.8), title_size=12, name_size=10.5, name_limit=20,
                          suptitle_size=15 if not note else 13)
    write_gallery_meta(out.with_suffix(".json"), n_selected, drawn, noun, "agreement.csv", order, [title])
    return n_selected
