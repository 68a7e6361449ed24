"""Atomic writes: the file appears whole or not at all, and an old file survives a failed rewrite."""

from __future__ import annotations

import errno
import io
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from leukoreport.base.atomic_io import atomic_path, stale_temporaries, write_csv, write_json, write_text
from leukoreport.base.errors import LeukoError

ROOT = Path(__file__).resolve().parents[2]


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


def fill_disk_after(monkeypatch, limit: int, err: int = errno.ENOSPC) -> None:
    """Files that atomic_io opens accept ``limit`` bytes, then every write raises OSError ``err`` (a full disk)."""
    import leukoreport.base.atomic_io as atomic_io

    class FullFile(io.FileIO):
        def write(self, data):
            room = max(0, limit - self.tell())
            if len(data) > room:
                super().write(bytes(data)[:room])
                raise OSError(err, os.strerror(err))
            return super().write(data)

    monkeypatch.setattr(atomic_io, "open", lambda file, mode="r", **kw: FullFile(file, mode.replace("b", "")),
                        raising=False)


def test_a_full_disk_while_writing_text_is_one_line_with_the_encoded_size(tmp_path, monkeypatch):
    out = tmp_path / "sub dir" / "notes.txt"
    write_text("old", out)
    fill_disk_after(monkeypatch, 4096)
    text = "é" * 1_250_001  # 2 bytes each in UTF-8: 2,500,002 bytes, about 3 MB (2 MB if counted in characters)
    with pytest.raises(LeukoError) as caught:
        write_text(text, out)
    assert str(caught.value) == f"no space left on device while writing {out.as_posix()} (about 3 MB needed)"
    assert isinstance(caught.value.__cause__, OSError) and caught.value.__cause__.errno == errno.ENOSPC
    monkeypatch.undo()
    assert out.read_text() == "old"
    assert os.listdir(out.parent) == ["notes.txt"]


def test_write_csv_and_write_json_pass_their_encoded_size(tmp_path, monkeypatch):
    fill_disk_after(monkeypatch, 0)
    df = pd.DataFrame({"x": ["ab"] * 600_000})  # "x\n" + 600,000 x "ab\n" = 1,800,002 bytes
    with pytest.raises(LeukoError, match=r"writing .*/split\.csv \(about 2 MB needed\)$"):
        write_csv(df, tmp_path / "split.csv")
    n = 1_000_000 - len('{\n  "v": ""\n}\n') + 1  # the JSON text is one byte over 1 MB: rounded up to 2
    assert len(json.dumps({"v": "a" * n}, indent=2) + "\n") == 1_000_001
    with pytest.raises(LeukoError, match=r"writing .*/metrics\.json \(about 2 MB needed\)$"):
        write_json({"v": "a" * n}, tmp_path / "metrics.json")
    with pytest.raises(LeukoError, match=r"writing .*/tiny\.json \(about 1 MB needed\)$"):  # at least 1
        write_json({}, tmp_path / "tiny.json")
    assert os.listdir(tmp_path) == []


def test_without_a_hint_the_estimate_is_what_reached_the_temporary(tmp_path, monkeypatch):
    """No size_hint: N is the size of the temporary when the disk filled (1,500,000 bytes -> 2 MB), at least 1."""
    out = tmp_path / "model.bin"
    fill_disk_after(monkeypatch, 1_500_000)
    import leukoreport.base.atomic_io as atomic_io

    with pytest.raises(LeukoError) as caught, atomic_path(out) as tmp, atomic_io.open(tmp, "wb") as fh:
        for _ in range(4):
            fh.write(b"\0" * 1_000_000)
    assert str(caught.value) == f"no space left on device while writing {out.as_posix()} (about 2 MB needed)"
    with pytest.raises(LeukoError, match=r"\(about 1 MB needed\)$"), atomic_path(out):
        raise OSError(errno.ENOSPC, "No space left on device")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("exc", [
    OSError(errno.EDQUOT, "Disk quota exceeded"),
    RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 11234240 vs 11234136"),
    RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed"),
    RuntimeError("something failed: No space left on device"),
])
def test_quota_and_torch_writer_errors_count_as_a_full_disk(tmp_path, exc):
    out = tmp_path / "model.pkl"
    out.write_bytes(b"complete older model")
    with pytest.raises(LeukoError) as caught, atomic_path(out, size_hint=44_780_000) as tmp:
        tmp.write_bytes(b"half")
        raise exc
    assert str(caught.value) == f"no space left on device while writing {out.as_posix()} (about 45 MB needed)"
    assert out.read_bytes() == b"complete older model"
    assert os.listdir(tmp_path) == ["model.pkl"]


@pytest.mark.parametrize("exc", [OSError(errno.EACCES, "Permission denied"), RuntimeError("CUDA out of memory"),
                                 ValueError("No space left, but not an OSError")])
def test_other_errors_pass_through_unchanged(tmp_path, exc):
    with pytest.raises(type(exc)) as caught, atomic_path(tmp_path / "x.bin", size_hint=10):
        raise exc
    assert caught.value is exc
    assert os.listdir(tmp_path) == []


def test_a_full_disk_before_the_temporary_exists(tmp_path, monkeypatch):
    """Creating the temporary itself can fail on a full disk (no free inodes): the same line, nothing created."""
    def no_room(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tempfile, "mkstemp", no_room)
    with pytest.raises(LeukoError, match=r"writing .*/a\.txt \(about 1 MB needed\)$"):
        write_text("x", tmp_path / "a.txt")
    assert os.listdir(tmp_path) == []


def test_a_step_prints_the_full_disk_line(tmp_path):
    """Through base.step_log, as in a workflow script: one `error: no space left ...` line, exit status 1, the old
    file untouched and no temporary left."""
    out = tmp_path / "results" / "metrics.json"
    write_json({"old": True}, out)
    code = (
        "import errno, io, os\n"
        "import leukoreport.base.atomic_io as atomic_io\n"
        "from leukoreport.base.step_log import step_log\n"
        "class Full(io.FileIO):\n"
        "    def write(self, data):\n"
        "        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))\n"
        "atomic_io.open = lambda file, mode='r', **kw: Full(file, mode.replace('b', ''))\n"
        f"with step_log({str(tmp_path / 'step.log')!r}):\n"
        f"    atomic_io.write_json({{'values': list(range(250_000))}}, {str(out)!r})\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    size = len(json.dumps({"values": list(range(250_000))}, indent=2)) + 1  # 2,888,911 bytes: about 3 MB
    assert 2_000_000 < size <= 3_000_000
    line = f"error: no space left on device while writing {out.as_posix()} (about 3 MB needed)"
    assert proc.returncode == 1
    assert proc.stderr.strip() == line
    assert (tmp_path / "step.log").read_text().strip() == line
    assert json.loads(out.read_text()) == {"old": True}
    assert os.listdir(out.parent) == ["metrics.json"]
