"""SHA-256 checksums of files (read in chunks) and of JSON values in one canonical form."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from leukoreport.base.errors import LeukoError

__all__ = ["CHUNK", "canonical_json", "sha256_bytes", "sha256_file", "sha256_json"]

CHUNK = 1 << 20  # bytes read at a time


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of the file at ``path``, read in chunks of ``CHUNK`` bytes; one-line LeukoError if unreadable."""
    path = Path(path)
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(CHUNK):
                digest.update(chunk)
    except OSError as exc:
        raise LeukoError(f"{path.as_posix()}: cannot read for its SHA-256 ({exc.strerror or exc})") from None
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def canonical_json(value: Any) -> str:
    """``value`` as JSON with sorted keys, no spaces, non-ASCII kept, no NaN: equal values give equal text."""
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise LeukoError(f"cannot write as canonical JSON: {exc}") from None


def sha256_json(value: Any) -> str:
    """Hex SHA-256 of the UTF-8 ``canonical_json`` of ``value`` (key order does not matter)."""
    return sha256_bytes(canonical_json(value).encode("utf-8"))
