"""What every figure shares: the Agg backend, sizes and styles, saving, thumbnails and the gallery page.

The other figure modules call ``style.save_figure`` and ``style.thumbnail`` through this module, so that a test
can watch every figure saved and every thumbnail opened in one place."""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # the one place the backend is chosen: every figure module imports this one

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402
from PIL import Image  # noqa: E402

from leukoreport.base.errors import LeukoError  # noqa: E402

__all__ = ["DPI", "GALLERY_DPI", "LITERAL_TEXT", "STYLE", "THUMB_PX", "WIDE_STYLE", "CellTitle", "gallery_page",
           "has_values", "log_axis", "note_figure", "required_key", "save_figure", "short_name", "thumbnail"]

DPI = 150
# Photo galleries (palette PNGs, most of report.html's bytes): shown at most 190 mm wide on screen, that is still
# 1.8 image pixels per CSS pixel, and printed at about 190 dpi; 0.64 of the pixels, 0.7 of the bytes at DPI.
GALLERY_DPI = 120
# Every figure is drawn inside one of these styles. File, folder, class and set names come from the user and
# may hold '$' (matplotlib's mathtext): all text is drawn literally, whatever it holds.
LITERAL_TEXT = {"text.parse_math": False}
STYLE = {"font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11,
         "xtick.labelsize": 10, "ytick.labelsize": 10, "legend.fontsize": 10, **LITERAL_TEXT}
# for figures about 10 inches wide: still about 8 pt when scaled to the 16.5 cm text width
WIDE_STYLE = {"font.size": 13, "axes.titlesize": 13, "axes.labelsize": 13,
              "xtick.labelsize": 12, "ytick.labelsize": 12, "legend.fontsize": 12, **LITERAL_TEXT}
THUMB_PX = 256


def log_axis(ax, axis: str, label: str = "{:g}", subs: tuple[float, ...] = (1.0,)) -> None:
    """Put ``ax``'s x or y ``axis`` on a log scale with major ticks at ``subs`` x powers of 10, labelled by the
    format string ``label`` (plain text: mathtext is off in every figure, LITERAL_TEXT) and no minor labels."""
    getattr(ax, f"set_{axis}scale")("log")
    which = getattr(ax, f"{axis}axis")
    which.set_major_locator(LogLocator(base=10.0, subs=subs))
    which.set_major_formatter(FuncFormatter(lambda v, _: label.format(v)))
    which.set_minor_formatter(NullFormatter())

CellTitle = Callable[[pd.Series], tuple[str, str | None]]


def save_figure(fig: Figure, out: str | Path, palette: bool = False) -> None:
    """Write `fig` as a PNG (DPI, tight bbox), creating parents, and close it. With `palette` (photo galleries) the
    PNG holds 256 dithered colours at GALLERY_DPI (a fifth of the bytes of RGB): the cells look the same."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        if not palette:
            fig.savefig(out, dpi=DPI, bbox_inches="tight", format="png")
            return
        buffer = io.BytesIO()
        fig.savefig(buffer, dpi=GALLERY_DPI, bbox_inches="tight", format="png")
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
        save_figure(fig, out)


def required_key(d: dict, key: str, where: str):
    """d[key], or LeukoError naming `where` and the key."""
    if key not in d:
        raise LeukoError(f"{where}: missing key '{key}'")
    return d[key]


def has_values(df: pd.DataFrame, column: str) -> bool:
    """Whether `df` has `column` with at least one numeric, non-missing value."""
    return column in df.columns and pd.to_numeric(df[column], errors="coerce").notna().any()


def thumbnail(path: Path) -> Image.Image:
    """The image at `path` as a small RGB thumbnail; LeukoError naming it if unreadable."""
    try:
        with Image.open(path) as img:
            thumb = img.convert("RGB")
    except (OSError, ValueError) as exc:
        raise LeukoError(f"{path}: cannot open image: {exc}") from None
    thumb.thumbnail((THUMB_PX, THUMB_PX))
    return thumb


def short_name(path: object, limit: int = 28) -> str:
    """The file name of `path`, shortened in the middle with an ellipsis when longer than `limit`."""
    name = Path(str(path)).name
    if len(name) <= limit:
        return name
    half = (limit - 1) // 2
    return name[:half] + "\u2026" + name[-(limit - 1 - half):]


def gallery_page(page: pd.DataFrame, root: Path, columns: int, out: Path, suptitle: str,
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
            ax.imshow(thumbnail(root / str(row["path"])))
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
            name = short_name(row["path"], name_limit) if name_limit else Path(str(row["path"])).name
            ax.text(0.5, -0.03, name, transform=ax.transAxes,
                    ha="center", va="top", fontsize=name_size, color="0.3")
        fig.suptitle(suptitle, fontsize=suptitle_size)
        save_figure(fig, out, palette=True)
    return drawn
