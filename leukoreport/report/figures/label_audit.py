"""The gallery of suspected label errors (from stats.label_audit), lowest self-confidence first."""

from __future__ import annotations

import numbers
from pathlib import Path

import pandas as pd

from leukoreport.base.errors import LeukoError
from leukoreport.report.figures.style import gallery_page, note_figure
from leukoreport.report.gallery_rows import GALLERY_META, left_out_text, write_gallery_meta

__all__ = ["plot_suspects"]


def _cell(row: pd.Series) -> tuple[str, str]:
    """Gallery cell title: given label, suggested label and the self-confidence, in red."""
    conf = float(row["self_confidence"])
    share = f"{conf:.0%}" if conf >= 0.005 else "<1%"
    return f"given: {row['given']}\nsuggested: {row['suggested']}\nself-conf. {share}", "#b00020"


def _positive(value: object, name: str) -> int:
    """`value` as a positive int, or LeukoError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise LeukoError(f"label audit gallery: {name} must be a positive integer, got {value!r}")
    return int(value)


def plot_suspects(table: pd.DataFrame, out_dir: str | Path, root: str | Path = ".", title: str = "",
                  limit: int = 30, columns: int = 6) -> int:
    """``out_dir/page-01.png``: the first ``limit`` suspects in rank order (or a line saying there are none), the
    title saying how many are not shown; what was drawn goes to ``out_dir/gallery.json``
    (leukoreport.report.gallery_rows.write_gallery_meta); returns the number of suspects. File and class names are drawn
    literally (no mathtext)."""
    limit, columns = _positive(limit, "limit"), _positive(columns, "columns")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("page-*.png"):
        old.unlink()
    suspects = table[table["suspected"].astype(bool)].sort_values("rank", kind="stable")
    n = int(len(suspects))
    noun, listed_in, order = "suspected label errors", "label_issues.csv", "rank (lowest self-confidence first)"
    if n == 0:
        head = f"No suspected label errors ({len(table)} images)"
        note_figure(head, out_dir / "page-01.png")
        write_gallery_meta(out_dir / GALLERY_META, 0, [], noun, listed_in, order, [head])
        return 0
    head = f"{n} suspected label error{'s' * (n > 1)} in {len(table)} images"
    note = left_out_text(min(n, limit), n, noun, listed_in)
    if note:
        head += f", lowest self-confidence first\n{note}"
    full = f"{title}\n{head}" if title else head
    drawn = gallery_page(suspects.head(limit), Path(root), columns, out_dir / "page-01.png", full, _cell,
                          cell_size=(1.7, 2.5), title_size=9)
    write_gallery_meta(out_dir / GALLERY_META, n, drawn, noun, listed_in, order, [full])
    return n
