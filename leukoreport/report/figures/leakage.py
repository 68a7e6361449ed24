"""The pair gallery of the leakage audit: duplicate image pairs side by side, most informative first."""

from __future__ import annotations

import math
import numbers
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from leukoreport.base.errors import LeukoError
from leukoreport.base.validation import require_columns
from leukoreport.data.leakage import PAIR_COLUMNS
from leukoreport.report.figures import style
from leukoreport.report.figures.style import STYLE, note_figure, short_name
from leukoreport.report.gallery_rows import (
    GALLERY_META,
    PAIR_ORDER,
    left_out_text,
    pair_rows,
    truthy,
    write_gallery_meta,
)
from leukoreport.report.limits import REPORT_LIMITS

__all__ = ["plot_pair_gallery"]


def _distance_text(d: object) -> str:
    """A pair distance as a short number: integers without decimals."""
    try:
        value = float(d)
    except (TypeError, ValueError):
        return str(d)
    return f"{value:.0f}" if value.is_integer() else f"{value:.3g}"


def _image_caption(group: object, label: object, width: int = 24) -> str:
    """'group · label' on one line when it fits in `width` characters, else group (shortened
    in the middle past 28 characters) and label on two lines."""
    text = f"{group} \u00b7 {label}"
    return text if len(text) <= width else f"{short_name(group, 28)}\n{label}"


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
            same = truthy(row["same_label"])
            colour = "black" if same else "darkred"
            sub.set_facecolor("0.93")
            axes = sub.subplots(1, 2)
            for ax, side in zip(axes, "ab"):
                ax.axis("off")
                ax.imshow(style.thumbnail(root / str(row[f"path_{side}"])))
                drawn.append(str(row[f"path_{side}"]))
                ax.set_title(_image_caption(row[f"group_{side}"], row[f"label_{side}"]),
                             fontsize=11.5, pad=3, color=colour)
                ax.text(0.5, -0.03, short_name(row[f"path_{side}"], 24), transform=ax.transAxes,
                        ha="center", va="top", fontsize=10.5, color="0.3")
            caption = (f"#{row['number']} {row['kind']}, d={_distance_text(row['distance'])} "
                       f"\u00b7 {row['scope']}")
            if not same:
                caption += "\nlabels differ"
            sub.suptitle(caption, fontsize=12, fontweight="bold", color=colour)
        fig.suptitle(title, fontsize=13.5)
        style.save_figure(fig, out, palette=True)
    return drawn


def plot_pair_gallery(pairs: pd.DataFrame, out_dir: str | Path, root: str | Path = ".",
                      per_page: int = 8, n_images: int | None = None,
                      limit: int | None = REPORT_LIMITS["pairs"]) -> int:
    """The `limit` most informative duplicate pairs of the leakage audit (pair_rows; all when None) on
    pages ``out_dir/page-NN.png`` of `per_page` pairs (one page saying so when there are none); each
    title says how many are not shown. What was drawn goes to ``out_dir/gallery.json``
    (write_gallery_meta, with the pairs' leakage.csv ``rows``); returns the number of pairs."""
    require_columns("pairs", pairs, PAIR_COLUMNS)
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
