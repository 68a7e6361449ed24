"""Small JPEG thumbnails of the evaluated images as data URIs, for the HTML report's confusion-cell viewer."""

from __future__ import annotations

import base64
import io
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from leukoreport.base.errors import LeukoError

__all__ = ["THUMBNAIL_QUALITY", "THUMBNAIL_SIDE", "thumbnail_uri"]

THUMBNAIL_SIDE = 96  # px, the longer side
THUMBNAIL_QUALITY = 60  # JPEG quality: about 2.3 kB of base64 per 96-px blood-cell crop


def thumbnail_uri(path: str | Path, side: int = THUMBNAIL_SIDE, quality: int = THUMBNAIL_QUALITY) -> str:
    """The image at `path` shrunk to at most `side` px (aspect kept, EXIF orientation applied) as a
    `data:image/jpeg;base64,...` URI."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.draft("RGB", (2 * side, 2 * side))  # JPEG: decode at a reduced scale, much faster
            im = ImageOps.exif_transpose(im)
            if im.mode not in ("RGB", "L"):
                im = im.convert("RGB")
            im.thumbnail((side, side), Image.Resampling.LANCZOS)
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=quality, optimize=True)
    except FileNotFoundError:
        raise LeukoError(f"{path.as_posix()}: image not found (needed for the thumbnails of report.html)") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise LeukoError(f"{path.as_posix()}: cannot make a thumbnail ({exc})") from None
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
