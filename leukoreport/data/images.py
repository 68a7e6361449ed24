"""Find and validate ImageFolder datasets, and convert their images to RGB (splitting: ``data.split``).

No fastai/torch here: this module must import fast.
"""

from __future__ import annotations

import os
import warnings
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
from PIL import Image, ImageFile, UnidentifiedImageError

from leukoreport.base.errors import LeukoError

__all__ = ["IMAGE_SUFFIXES", "OS_JUNK", "SIXTEEN_BIT_MODES", "UnsupportedImage", "discover", "is_hidden", "to_rgb",
           "validate_image"]

IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".gif", ".webp"}
)
# Files and folders operating systems, file managers and NAS boxes leave beside images (compared in lower case);
# like names starting with '.' (.DS_Store, AppleDouble ._* files) they are skipped everywhere.
OS_JUNK: frozenset[str] = frozenset(
    {"thumbs.db", "ehthumbs.db", "ehthumbs_vista.db", "desktop.ini", "icon\r", "__macosx", "@eadir",
     "$recycle.bin", "system volume information"}
)
SIXTEEN_BIT_MODES: frozenset[str] = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})


def is_hidden(path: Path) -> bool:
    """True for hidden names (starting with '.') and operating-system junk (OS_JUNK): skipped everywhere."""
    return path.name.startswith(".") or path.name.lower() in OS_JUNK


def _visible(folder: Path) -> list[Path]:
    """Entries of a folder that are neither hidden nor OS junk, sorted by name."""
    try:
        entries = list(folder.iterdir())
    except OSError as exc:
        raise LeukoError(f"{folder.as_posix()}: cannot list folder ({exc.strerror or exc})") from exc
    return sorted((p for p in entries if not is_hidden(p)), key=lambda p: p.name)


def _why(exc: BaseException) -> str:
    """The exception text, or its type name when it has none."""
    return str(exc).strip() or type(exc).__name__


def _not_a_file(path: Path) -> str:
    """Why ``path`` (neither a regular file nor a folder) cannot be read, for a one-line message."""
    if path.is_symlink():
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        return f"broken link (its target {target} does not exist)"
    return "not a regular file or folder"


@contextmanager
def _strict_decoding():
    """Make PIL refuse truncated images while inside (some libraries, e.g. WeasyPrint, relax it on import), and
    turn its decompression-bomb warning (more than Image.MAX_IMAGE_PIXELS pixels) into an error."""
    saved = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = saved


class UnsupportedImage(ValueError):
    """A decodable image whose pixel format has no sensible 8-bit RGB conversion."""


def to_rgb(img: Image.Image) -> Image.Image:
    """``img`` as a new 8-bit RGB image: the one conversion for every reader of user images.

    Modes go through ``convert("RGB")``: grayscale is repeated, palettes are looked up, CMYK is converted without
    a colour profile, alpha is dropped (not composited); 16-bit-per-channel RGB already opens as 8-bit RGB (PIL
    keeps the high byte, the same in every reader).

    Refused with UnsupportedImage: 16-bit grayscale (modes in SIXTEEN_BIT_MODES, e.g. 16-bit TIFF or PNG), since
    fastai's loader (evaluation, prediction, the exported model) clips its values above 255 to white and any
    scaling here could not be repeated there, so training and evaluation would see different pixels; 32-bit
    integer or float images (modes I, F), which have no agreed 8-bit scale; and modes PIL cannot convert.
    """
    mode = img.mode
    if mode in SIXTEEN_BIT_MODES:
        raise UnsupportedImage(f"mode {mode}: 16-bit grayscale is read differently by fastai's loader and by the "
                               "cache; save it as 8-bit")
    if mode in ("I", "F") or mode.startswith(("I;", "F;")):
        kind = "float" if mode.startswith("F") else "32-bit integer"
        raise UnsupportedImage(f"mode {mode}: {kind} pixels have no agreed 8-bit scale; save it as 8-bit")
    try:
        return img.convert("RGB")
    except ValueError as exc:  # e.g. "conversion from La to L not supported"
        raise UnsupportedImage(f"mode {mode} cannot be converted to RGB: {_why(exc)}") from exc


def validate_image(path: str | Path) -> None:
    """Raise LeukoError unless `path` is an image PIL can fully decode and `to_rgb` can convert (one line naming
    it: not an image file, cannot read file, image too large, unsupported image, corrupt or truncated image)."""
    with _strict_decoding():
        _validate_image(path)


def _validate_image(path: str | Path) -> None:
    """validate_image without touching PIL's settings."""
    path = Path(path)
    where = path.as_posix()
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise LeukoError(f"{where}: not an image file (suffix {path.suffix or '(none)'!r} is not one of "
                         f"{', '.join(sorted(IMAGE_SUFFIXES))})")
    try:
        img = Image.open(path)
    except UnidentifiedImageError as exc:
        empty = path.stat().st_size == 0
        raise LeukoError(f"{where}: not an image file ({'empty file' if empty else 'PIL cannot identify it'})") from exc
    except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        raise LeukoError(f"{where}: cannot read file ({exc.strerror or exc})") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise LeukoError(f"{where}: image too large ({exc})") from exc
    except Exception as exc:  # PIL raises many types (SyntaxError, ValueError, struct.error, ...)
        raise LeukoError(f"{where}: corrupt or truncated image ({_why(exc)})") from exc
    try:
        with img:
            img.load()
            if img.mode != "RGB":  # already 8-bit RGB: no copy needed to know it converts
                to_rgb(img)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise LeukoError(f"{where}: image too large ({exc})") from exc
    except UnsupportedImage as exc:
        raise LeukoError(f"{where}: unsupported image ({exc})") from exc
    except Exception as exc:
        raise LeukoError(f"{where}: corrupt or truncated image ({_why(exc)})") from exc


def discover(root: str | Path) -> pd.DataFrame:
    """One row (`path`, `label`) per image of an ImageFolder tree, sorted by label then path.

    Every image is fully decoded; any bad entry raises LeukoError naming it.
    """
    root = Path(root)
    where = root.as_posix()
    if not root.exists():
        raise LeukoError(f"{where}: folder not found")
    if not root.is_dir():
        raise LeukoError(f"{where}: not a folder (expected one subfolder per class)")
    classes = []
    for entry in _visible(root):
        if entry.is_dir():
            classes.append(entry)
        elif entry.is_file():
            raise LeukoError(f"{entry.as_posix()}: file outside a class folder "
                             f"(expected only one subfolder per class in {where})")
        else:
            raise LeukoError(f"{entry.as_posix()}: {_not_a_file(entry)}")
    if not classes:
        raise LeukoError(f"{where}: no class folders (expected one subfolder per class)")
    rows = []
    for cls in classes:
        files = _visible(cls)
        if not files:
            raise LeukoError(f"{cls.as_posix()}: empty class folder")
        for f in files:
            if f.is_dir():
                raise LeukoError(f"{f.as_posix()}: nested folder inside class folder (expected only images)")
            if not f.is_file():
                raise LeukoError(f"{f.as_posix()}: {_not_a_file(f)}")
            validate_image(f)
            rows.append((f.as_posix(), cls.name))
    df = pd.DataFrame(rows, columns=["path", "label"])
    return df.sort_values(["label", "path"], kind="stable", ignore_index=True)
