"""Rendering the report templates to one self-contained HTML file, and printing it to PDF."""

from __future__ import annotations

import base64
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from leukoreport.base.atomic_io import atomic_path, write_text
from leukoreport.base.errors import LeukoError
from leukoreport.report.read_results import need_file
from leukoreport.report.verdict_style import VERDICT_STYLES

__all__ = ["STYLESHEET", "make_environment", "png_data_uri", "render_html", "write_html", "write_pdf"]

STYLESHEET = "style.css"  # the one stylesheet of every document, in the templates folder (base.html.j2 inlines it)


def png_data_uri(path: Path) -> str:
    """The PNG file as a `data:image/png;base64,...` URI (report.html stays self-contained)."""
    data = need_file(path).read_bytes()
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise LeukoError(f"{path.as_posix()}: not a PNG file")
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


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
