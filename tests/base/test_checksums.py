"""SHA-256 of files read in chunks and of canonical JSON (leukoreport.base.checksums)."""

from __future__ import annotations

import hashlib
import json

import pytest

from leukoreport.base import checksums
from leukoreport.base.checksums import canonical_json, sha256_bytes, sha256_file, sha256_json
from leukoreport.base.errors import LeukoError


@pytest.mark.parametrize("size", [0, 1, checksums.CHUNK - 1, checksums.CHUNK, checksums.CHUNK + 1,
                                  3 * checksums.CHUNK + 5])
def test_sha256_file_equals_hashlib_of_the_whole_file(tmp_path, size):
    data = bytes((i * 31 + 7) % 256 for i in range(size))
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest() == sha256_bytes(data)


def test_sha256_file_reads_in_chunks(tmp_path, monkeypatch):
    """With a 7-byte chunk the file is read in pieces of at most 7 bytes and the digest is unchanged."""
    data = b"leukocyte " * 101
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    reads: list[int] = []
    real_open = open

    class Spy:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def read(self, n=-1):
            chunk = self.fh.read(n)
            reads.append(len(chunk))
            return chunk

    monkeypatch.setattr(checksums, "CHUNK", 7)
    monkeypatch.setattr("builtins.open", lambda *a, **k: Spy(real_open(*a, **k)))
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()
    assert max(reads) == 7 and sum(reads) == len(data)


def test_sha256_file_of_a_missing_file_is_one_line(tmp_path):
    missing = tmp_path / "nope" / "model.pkl"
    with pytest.raises(LeukoError) as err:
        sha256_file(missing)
    assert str(err.value).startswith(f"{missing.as_posix()}: cannot read") and "\n" not in str(err.value)


def test_sha256_json_is_the_hash_of_sorted_compact_utf8_json():
    value = {"b": [1, 2.5, None], "a": {"z": True, "é": "ü"}}
    text = '{"a":{"z":true,"é":"ü"},"b":[1,2.5,null]}'
    assert canonical_json(value) == text
    assert sha256_json(value) == hashlib.sha256(text.encode("utf-8")).hexdigest()
    reordered = json.loads(json.dumps({"a": {"é": "ü", "z": True}, "b": [1, 2.5, None]}))
    assert sha256_json(reordered) == sha256_json(value)
    assert sha256_json({**value, "c": 0}) != sha256_json(value)


def test_sha256_json_refuses_nan():
    with pytest.raises(LeukoError, match="canonical JSON"):
        sha256_json({"lr": float("nan")})
