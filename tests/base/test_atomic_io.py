"""Atomic writes: the file appears whole or not at all, and an old file survives a failed rewrite."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from leukoreport.base.atomic_io import atomic_path, stale_temporaries, write_csv, write_json, write_text
from leukoreport.base.errors import LeukoError


def test_write_csv_atomic(tmp_path, monkeypatch):
    df = pd.DataFrame({"path": ["a/x.png", "b/y.png"], "label": ["a", "b"], "split": ["train", "test"]})
    out = tmp_path / "results" / "data" / "split.csv"
    write_csv(df, out)
    assert pd.read_csv(out).equals(df)
    assert out.read_bytes().splitlines()[0] == b"path,label,split"
    assert sorted(p.name for p in out.parent.iterdir()) == ["split.csv"]
    assert oct(out.stat().st_mode & 0o777) == "0o644"

    # a failure while writing leaves the old file intact and no temp file behind
    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", boom)
    with pytest.raises(RuntimeError):
        write_csv(df.head(1), out)
    monkeypatch.undo()
    assert pd.read_csv(out).equals(df)
    assert sorted(p.name for p in out.parent.iterdir()) == ["split.csv"]


def test_write_json_round_trip(tmp_path: Path):
    obj = {"dataset": "ext", "n": np.int64(3), "accuracy": np.float64(2 / 3), "precision": None,
           "matrix": np.array([[1, 2], [0, 0]]), "path": Path("a/b.png")}
    out = tmp_path / "deep" / "er" / "metrics.json"
    write_json(obj, out)
    assert json.loads(out.read_text()) == {"dataset": "ext", "n": 3, "accuracy": 2 / 3, "precision": None,
                                           "matrix": [[1, 2], [0, 0]], "path": "a/b.png"}
    assert out.read_text().startswith('{\n  "dataset"')
    assert [p.name for p in out.parent.iterdir()] == ["metrics.json"]
    write_json({"replaced": True}, out)
    assert json.loads(out.read_text()) == {"replaced": True}


def test_write_json_rejects_nan(tmp_path: Path):
    with pytest.raises(LeukoError, match="x.json"):
        write_json({"v": float("nan")}, tmp_path / "x.json")
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_removes_temp_on_error(tmp_path: Path):
    out = tmp_path / "report.pdf"
    write_text("old", out)
    with pytest.raises(ValueError), atomic_path(out) as tmp:
        tmp.write_text("half")
        assert tmp.parent == out.parent and tmp != out
        raise ValueError("renderer crashed")
    assert out.read_text() == "old"
    assert os.listdir(tmp_path) == ["report.pdf"]


def test_read_json_names_the_file(tmp_path):
    from leukoreport.base.atomic_io import read_json

    good = tmp_path / "a.json"
    good.write_text('{"n": 3}')
    assert read_json(good) == {"n": 3}
    (tmp_path / "list.json").write_text("[1, 2]")
    for name, text, needle in [("bad.json", "{oops", "bad.json: not valid JSON"),
                               ("list.json", None, "list.json: expected a JSON object")]:
        if text is not None:
            (tmp_path / name).write_text(text)
        with pytest.raises(LeukoError, match=needle):
            read_json(tmp_path / name)
    with pytest.raises(LeukoError, match=r"none.json: file not found \(needed for the report\)"):
        read_json(tmp_path / "none.json", "the report")


def test_a_completed_write_removes_the_temporaries_of_earlier_killed_writes(tmp_path):
    """A job killed while writing leaves a hidden `.NAME.*.tmp`; the next completed write of NAME removes it, and
    leaves other files' temporaries and look-alike names alone."""
    target = tmp_path / "report [v1].pdf"
    stale = [tmp_path / ".report [v1].pdf.a1b2c3.tmp", tmp_path / ".report [v1].pdf.zz.tmp"]
    others = [tmp_path / ".summary.pdf.a1b2c3.tmp", tmp_path / ".report [v1].pdf.a1b2c3.txt",
              tmp_path / "report [v1].pdf.x.tmp"]
    for p in [*stale, *others]:
        p.write_bytes(b"")
    with atomic_path(target) as tmp:
        assert set(stale_temporaries(target, keep=tmp)) == set(stale)
        tmp.write_bytes(b"%PDF")
    assert target.read_bytes() == b"%PDF"
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in others)
    assert stale_temporaries(target) == []


def test_a_failed_write_keeps_earlier_temporaries_and_the_old_file(tmp_path):
    target = tmp_path / "metrics.json"
    target.write_text("{}")
    stale = tmp_path / ".metrics.json.old.tmp"
    stale.write_bytes(b"")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "{}" and stale.exists()
    assert stale_temporaries(target) == [stale]
