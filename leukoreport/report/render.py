"""Rendering the report templates to one self-contained HTML file, and printing it to PDF."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from PIL import Image

from leukoreport.base.atomic_io import atomic_path, write_text
from leukoreport.base.errors import LeukoError
from leukoreport.report.read_results import need_file
from leukoreport.report.verdict_style import VERDICT_STYLES

__all__ = ["JPEG_QUALITY", "PHOTO_COLOURS", "PLOT_TOLERANCE", "STYLESHEET", "EncodedFigure", "encode_figure",
           "make_environment", "png_data_uri", "render_html", "write_html", "write_pdf"]

STYLESHEET = "style.css"  # the one stylesheet of every document, in the templates folder (base.html.j2 inlines it)
# How figures are inlined (issue 23: report.html was 54 MB at 3 seeds x 6 sets). An opaque figure with more distinct
# colours than PHOTO_COLOURS holds photographs (Grad-CAM pages: 80,000+ colours; matplotlib plots draw at most a
# few thousand anti-aliasing shades) and is inlined as JPEG at JPEG_QUALITY when that is smaller. A plot becomes a
# 256-colour PNG when no pixel moves by more than PLOT_TOLERANCE levels (of 255) in any channel, else an
# optimised RGB PNG (lossless). Palette PNGs (the galleries, quantised by style.save_figure) are kept as written.
PHOTO_COLOURS = 4096
JPEG_QUALITY = 85
PLOT_TOLERANCE = 4


@dataclass(frozen=True)
class EncodedFigure:
    """The bytes of one figure as inlined, and their MIME type."""
    mime: str
    data: bytes


def _encoded(img: Image.Image, **options) -> bytes:
    """`img` saved to bytes with Pillow `options`."""
    buffer = io.BytesIO()
    img.save(buffer, **options)
    return buffer.getvalue()


def _plot_png(rgb: Image.Image) -> bytes:
    """The plot as a 256-colour PNG when that keeps every pixel within PLOT_TOLERANCE, else as an RGB PNG."""
    quantised = rgb.quantize(colors=256, method=Image.Quantize.MAXCOVERAGE, dither=Image.Dither.NONE)
    diff = np.abs(np.asarray(quantised.convert("RGB"), dtype=np.int16) - np.asarray(rgb, dtype=np.int16))
    return _encoded(quantised if int(diff.max()) <= PLOT_TOLERANCE else rgb, format="PNG", optimize=True)


def encode_figure(data: bytes, where: str = "figure") -> EncodedFigure:
    """The smallest faithful encoding of the PNG bytes `data` (rules at PHOTO_COLOURS); LeukoError naming `where`."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise LeukoError(f"{where}: not a PNG file")
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            mode = img.mode
            alpha = img.getchannel("A") if mode in ("RGBA", "LA") else None
            rgb = img.convert("RGB") if mode in ("RGB", "RGBA", "L", "LA") else None
    except (OSError, ValueError) as exc:
        raise LeukoError(f"{where}: cannot read PNG: {exc}") from None
    if rgb is None or (alpha is not None and alpha.getextrema() != (255, 255)):
        return EncodedFigure("image/png", data)  # palette galleries and transparent figures: kept as written
    if rgb.getcolors(PHOTO_COLOURS) is None:
        candidate = EncodedFigure("image/jpeg", _encoded(rgb, format="JPEG", quality=JPEG_QUALITY, optimize=True))
    else:
        candidate = EncodedFigure("image/png", _plot_png(rgb))
    return candidate if len(candidate.data) < len(data) else EncodedFigure("image/png", data)


def png_data_uri(path: Path) -> str:
    """The PNG figure file as a `data:` URI, encoded by encode_figure (report.html stays self-contained)."""
    path = Path(path)
    figure = encode_figure(need_file(path).read_bytes(), path.as_posix())
    return f"data:{figure.mime};base64," + base64.b64encode(figure.data).decode("ascii")


def make_environment(templates_dir: str | Path) -> Environment:
    """Jinja2 environment that escapes everything and fails on undefined names."""
    return Environment(loader=FileSystemLoader(str(templates_dir)), autoescape=True,
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def render_html(context: dict, templates_dir: str | Path, name: str = "report") -> str:
    """Template `name`.html.j2 as one self-contained HTML string (style.css inlined for document `name`, figures as
    data URIs)."""
    templates_dir = Path(templates_dir)
    css_path = templates_dir / STYLESHEET
    if css_path.is_file() and "</style" in css_path.read_text(encoding="utf-8").lower():
        raise LeukoError(f"{css_path.as_posix()}: must not contain '</style'")
    env = make_environment(templates_dir)
    return env.get_template(f"{name}.html.j2").render(**context, document=name, verdict_styles=VERDICT_STYLES)


def write_html(html: str, out: str | Path) -> None:
    """Write the HTML atomically."""
    write_text(html, out)


def write_pdf(html_path: str | Path, pdf_path: str | Path) -> None:
    """Render report.html to PDF with WeasyPrint, atomically."""
    html_path = Path(html_path)
    if not html_path.is_file():
        raise LeukoError(f"{html_path.as_posix()}: file not found (needed to write {Path(pdf_path).as_posix()})")
    from PIL import ImageFile

    relaxed = ImageFile.LOAD_TRUNCATED_IMAGES
    import weasyprint  # lazy: slow import; it sets PIL's LOAD_TRUNCATED_IMAGES, which we restore

    ImageFile.LOAD_TRUNCATED_IMAGES = relaxed

    with atomic_path(pdf_path) as tmp:
        weasyprint.HTML(filename=str(html_path)).write_pdf(tmp)
