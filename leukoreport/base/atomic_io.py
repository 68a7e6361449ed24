"""Atomic file writes: a failed or interrupted job never leaves a file that looks complete."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from leukoreport.base.errors import LeukoError

__all__ = ["atomic_path", "read_json", "stale_temporaries", "write_csv", "write_json", "write_text"]


def stale_temporaries(path: Path, keep: Path | None = None) -> list[Path]:
    """The hidden temporary files ``.NAME.*.tmp`` that earlier, killed writes of ``path`` left beside it."""
    prefix = f".{path.name}."
    return [p for p in path.parent.iterdir()
            if p.name.startswith(prefix) and p.name.endswith(".tmp") and p != keep and p.is_file()]


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` (mode 0644) and the temporaries of
    earlier killed writes of ``path`` are removed; on failure the temporary is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, path)
        for stale in stale_temporaries(path):
            stale.unlink(missing_ok=True)
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_text(text: str, path: str | Path) -> None:
    """Write UTF-8 text atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)


def write_csv(df: pd.DataFrame, path: str | Path) -> None:
    """Write ``df`` (no index, ``\\n`` line ends) atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as fh:
        df.to_csv(fh, index=False, lineterminator="\n")


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
