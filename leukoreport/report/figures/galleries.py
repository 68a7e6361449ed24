"""Thumbnail galleries of predictions: errors, top losses, and images wrong or unstable across runs."""

from __future__ import annotations

import numbers
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from leukoreport.base.errors import LeukoError
from leukoreport.base.validation import require_columns
from leukoreport.report.figures import style
from leukoreport.report.figures.style import STYLE, gallery_page, note_figure
from leukoreport.report.gallery_rows import (
    AGREEMENT_NOUNS,
    GALLERY_META,
    agreement_rows,
    agreement_selected,
    left_out_text,
    write_gallery_meta,
)
from leukoreport.report.limits import REPORT_LIMITS, positive_limit
from leukoreport.stats.error_rows import top_loss_rows
from leukoreport.stats.metrics import misclassified

__all__ = ["AGREEMENT_KINDS", "plot_agreement_gallery", "plot_error_gallery", "plot_top_losses"]


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
    require_columns("predictions", pred, ("path", "label", "prediction"))
    if columns < 1 or rows < 1:
        raise LeukoError(f"error gallery: columns and rows must be at least 1, got {columns}, {rows}")
    if limit is not None:
        limit = positive_limit(limit, "error gallery: limit")
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
        drawn += gallery_page(page, Path(root), columns, out_dir / f"page-{number:02d}.png", title,
                               _error_title)
    write_gallery_meta(out_dir / GALLERY_META, n_errors, drawn, noun, listed_in, order, titles)
    return n_errors


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
    require_columns("predictions", pred, ("path", "label", "prediction", "loss"), allow_empty=False)
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
    gallery_page(top, Path(root), columns, Path(out), title, _loss_title,
                  cell_size=(1.8, 2.85), title_size=13, name_size=11, name_limit=20,
                  badge=_loss_badge, suptitle_size=15)


AGREEMENT_KINDS = {
    "always_wrong": ("Wrong in every run", "No images wrong in every run"),
    "unstable": ("Prediction changes between runs",
                 "No image changes its prediction between runs"),
    "most_wrong": ("Wrong in at least one seed, most seeds first", "No image wrong in any run"),
}


def _agreement_title(row: pd.Series) -> tuple[str, str]:
    """Agreement-gallery cell title: true label, runs right and the majority prediction; red when
    the majority is wrong."""
    right = f"right in {int(row['n_correct'])} of {int(row['n_runs'])}"
    colour = "darkgreen" if str(row["majority"]) == str(row["label"]) else "darkred"
    return f"true: {row['label']}\n{right}\nmostly: {row['majority']}", colour


def _most_wrong_title(row: pd.Series) -> tuple[str, str]:
    """Most-wrong-gallery cell title: true label, in how many seeds it is wrong and the majority
    prediction; red when the majority is wrong."""
    n_runs = int(row["n_runs"])
    wrong = f"wrong in {n_runs - int(row['n_correct'])} of {n_runs} seeds"
    colour = "darkgreen" if str(row["majority"]) == str(row["label"]) else "darkred"
    return f"true: {row['label']}\n{wrong}\nmostly: {row['majority']}", colour


def plot_agreement_gallery(agreement: pd.DataFrame, kind: str, out: str | Path,
                           root: str | Path = ".", limit: int = REPORT_LIMITS["agreement"],
                           columns: int = 6) -> int:
    """One page of the images wrong in every run (kind 'always_wrong'), whose prediction changes
    between runs ('unstable') or wrong in the most runs ('most_wrong', each titled "wrong in k of n
    seeds"), at most `limit` of them in agreement_rows order, the title saying how
    many are not shown (a small figure saying so when there are none); what was drawn goes to a JSON
    beside `out` (write_gallery_meta); returns how many images are flagged."""
    selected = agreement_selected(agreement, kind)
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
            style.save_figure(fig, out)
        write_gallery_meta(out.with_suffix(".json"), 0, [], noun, "agreement.csv", order, [title])
        return 0
    title = f"{head}: {n_selected} of {total} images"
    note = left_out_text(len(shown), n_selected, noun, "agreement.csv")
    if note:
        title += f"\n{note}"
    # "mostly: lymphocyte" is the widest title line: 12 pt keeps neighbouring titles apart
    drawn = gallery_page(shown, Path(root), columns, out, title,
                          _most_wrong_title if kind == "most_wrong" else _agreement_title,
                          cell_size=(1.8, 2.8), title_size=11 if kind == "most_wrong" else 12, name_size=10.5,
                          name_limit=20, suptitle_size=15 if not note else 13)
    write_gallery_meta(out.with_suffix(".json"), n_selected, drawn, noun, "agreement.csv", order, [title])
    return n_selected
