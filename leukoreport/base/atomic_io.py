"""Atomic file writes: a failed or interrupted job never leaves a file that looks complete."""

from __future__ import annotations

import errno
import json
import math
import os
import tempfile
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from leukoreport.base.errors import LeukoError

__all__ = ["atomic_path", "is_full_disk", "read_json", "stale_temporaries", "write_csv", "write_json", "write_text"]


def stale_temporaries(path: Path, keep: Path | None = None) -> list[Path]:
    """The hidden temporary files ``.NAME.*.tmp`` that earlier, killed writes of ``path`` left beside it."""
    prefix = f".{path.name}."
    return [p for p in path.parent.iterdir()
            if p.name.startswith(prefix) and p.name.endswith(".tmp") and p != keep and p.is_file()]


_FULL_DISK_ERRNOS = frozenset(n for n in (errno.ENOSPC, getattr(errno, "EDQUOT", None)) if n is not None)
# torch's C++ writer turns a failed write into RuntimeError("[enforce fail at inline_container.cc:...] . unexpected
# pos A vs B") or "... file write failed"; base cannot import torch, so these are recognised by their text
_FULL_DISK_MESSAGES = ("unexpected pos", "file write failed", "No space left")


def _exception_chain(exc: BaseException | None) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from or while handling, innermost last."""
    chain: list[BaseException] = []
    while exc is not None and all(exc is not seen for seen in chain):
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    return chain


def is_full_disk(exc: BaseException) -> bool:
    """True when ``exc`` (or an exception it was raised from) is a full disk or an exceeded quota."""
    return any((isinstance(e, OSError) and e.errno in _FULL_DISK_ERRNOS)
               or (isinstance(e, RuntimeError) and any(m in str(e) for m in _FULL_DISK_MESSAGES))
               for e in _exception_chain(exc))


def _megabytes_needed(size_hint: int | None, written: int) -> int:
    """Whole megabytes (10**6 bytes), rounded up and at least 1, of ``size_hint`` or else of ``written``."""
    size = size_hint if size_hint is not None else written
    return max(1, math.ceil(max(0, size) / 1_000_000))


def _full_disk_error(path: Path, size_hint: int | None, tmp: Path | None) -> LeukoError:
    """The one-line error for a full disk while writing ``path``; without a hint the estimate is what had
    reached the temporary ``tmp`` when the disk filled (a lower bound)."""
    written = 0
    if tmp is not None:
        try:
            written = tmp.stat().st_size
        except OSError:
            written = 0
    mb = _megabytes_needed(size_hint, written)
    return LeukoError(f"no space left on device while writing {path.as_posix()} (about {mb} MB needed)")


@contextmanager
def atomic_path(path: str | Path, size_hint: int | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` (mode 0644) and the temporaries of
    earlier killed writes of ``path`` are removed; on failure the temporary is removed and ``path`` is untouched.

    A full disk or quota (OSError ENOSPC/EDQUOT, or torch's RuntimeError "unexpected pos" / "file write failed" /
    "No space left") becomes one LeukoError ``no space left on device while writing FILE (about N MB needed)``:
    N is ``size_hint`` (bytes) in MB (10**6 bytes) rounded up, at least 1; without a hint, the size the temporary
    had reached when the disk filled (the rest is unknown, so it is a lower bound). Other errors pass unchanged.
    """
    path = Path(path)
    tmp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        tmp = Path(name)
        yield tmp
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, path)
        for stale in stale_temporaries(path):
            stale.unlink(missing_ok=True)
    except (OSError, RuntimeError) as exc:
        if not is_full_disk(exc):
            raise
        # free the finished frames' locals (torch's file writer) so its open temporary and that space go at once
        for failed in _exception_chain(exc):
            traceback.clear_frames(failed.__traceback__)
        raise _full_disk_error(path, size_hint, tmp) from exc
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def write_text(text: str, path: str | Path) -> None:
    """Write UTF-8 text atomically."""
    data = text.encode("utf-8")
    with atomic_path(path, size_hint=len(data)) as tmp, open(tmp, "wb") as fh:
        fh.write(data)


def write_csv(df: pd.DataFrame, path: str | Path) -> None:
    """Write ``df`` (no index, ``\\n`` line ends) atomically."""
    write_text(df.to_csv(index=False, lineterminator="\n"), path)


def _json_default(obj: Any) -> Any:
    """Turn numpy scalars and arrays and paths into plain JSON values."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return obj.as_posix()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def write_json(obj: Any, path: str | Path) -> None:
    """Write ``obj`` as strict JSON (indent 2, no NaN) atomically; LeukoError naming the file if it can't be."""
    try:
        text = json.dumps(obj, indent=2, allow_nan=False, default=_json_default) + "\n"
    except (TypeError, ValueError) as exc:
        raise LeukoError(f"{path}: cannot write as JSON: {exc}") from None
    write_text(text, path)


def read_json(path: str | Path, needed_for: str = "") -> dict:
    """A JSON object from ``path``; one-line LeukoError naming the file when missing, not JSON or not an object."""
    path = Path(path)
    where = path.as_posix()
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        raise LeukoError(f"{where}: file not found{f' (needed for {needed_for})' if needed_for else ''}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LeukoError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise LeukoError(f"{where}: expected a JSON object")
    return data
