"""A full disk while saving with torch (the model export): one line naming the file, nothing half-written; on a
real 1 MB tmpfs where mounting one is permitted."""

from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from leukoreport.base.atomic_io import atomic_path, write_text
from leukoreport.base.errors import LeukoError
from tests.conftest import tiny_train_config


class FullAfter:
    """A writable file object over ``fh`` that takes ``limit`` bytes, then raises ENOSPC on every write."""

    def __init__(self, fh, limit: int):
        self.fh, self.limit = fh, limit

    def write(self, data) -> int:
        room = max(0, self.limit - self.fh.tell())
        if len(data) > room:
            self.fh.write(bytes(data)[:room])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self.fh.write(data)

    def flush(self) -> None:
        self.fh.flush()


def linear_state():
    """A small nn.Linear(100, 100) state dict and its size in bytes counted by hand (float32 weight and bias)."""
    import torch

    torch.manual_seed(0)
    return torch.nn.Linear(100, 100).state_dict(), (100 * 100 + 100) * 4


@contextmanager
def small_tmpfs(folder: Path, size: str = "1m") -> Iterator[Path]:
    """Mount a tmpfs of ``size`` on ``folder`` for the block; skip the test where mounting is not permitted."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                              capture_output=True, text=True)
    except OSError as exc:
        pytest.skip(f"cannot run mount: {exc}")
    if proc.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {' '.join(proc.stderr.split())}")
    try:
        yield folder
    finally:
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)
            raise AssertionError(f"{folder}: still in use after the test (a file left open on it)")


def test_torch_save_on_a_full_disk_is_one_line_and_keeps_the_old_file(tmp_path):
    """torch.save onto a file whose write raises ENOSPC fails with torch's RuntimeError ("unexpected pos ..."),
    which atomic_path turns into the full-disk line; the older model stays, no temporary is left."""
    import torch

    state, n_bytes = linear_state()
    assert n_bytes == 40_400
    out = tmp_path / "run" / "model.pt"
    write_text("older complete model", out)
    with pytest.raises(LeukoError) as caught, atomic_path(out) as tmp, open(tmp, "wb") as fh:
        torch.save(state, FullAfter(fh, 1000))
    cause = caught.value.__cause__
    assert isinstance(cause, RuntimeError) and "unexpected pos" in str(cause)
    # no hint: what reached the temporary (1000 bytes) is the estimate, rounded up to 1 MB
    assert str(caught.value) == f"no space left on device while writing {out.as_posix()} (about 1 MB needed)"
    assert out.read_text() == "older complete model"
    assert os.listdir(out.parent) == ["model.pt"]


def test_the_size_hint_names_what_the_save_needs(tmp_path):
    import torch

    state, n_bytes = linear_state()
    out = tmp_path / "model.pt"
    with pytest.raises(LeukoError) as caught, atomic_path(out, size_hint=n_bytes * 50) as tmp, \
            open(tmp, "wb") as fh:  # 2,020,000 bytes: about 3 MB
        torch.save(state, FullAfter(fh, 0))
    assert str(caught.value).endswith(f"writing {out.as_posix()} (about 3 MB needed)")
    assert os.listdir(tmp_path) == []


def test_a_real_full_tmpfs(tmp_path):
    """On a 1 MB tmpfs: torch.save by path (torch's own file writer) and a text file bigger than the disk each give
    the one line, the files already there stay whole and no temporary is left."""
    import torch

    with small_tmpfs(tmp_path / "disk") as disk:
        old = disk / "model.pt"
        state, _ = linear_state()
        with atomic_path(old) as tmp:
            torch.save(state, tmp)
        before, used = old.read_bytes(), shutil.disk_usage(disk).used
        big = {"weight": torch.zeros(1000, 1000)}  # 4,000,000 bytes of float32
        with pytest.raises(LeukoError) as caught, atomic_path(old, size_hint=4_000_000) as tmp:
            torch.save(big, tmp)
        assert isinstance(caught.value.__cause__, RuntimeError | OSError)
        assert str(caught.value) == f"no space left on device while writing {old.as_posix()} (about 4 MB needed)"
        text = disk / "notes.txt"
        with pytest.raises(LeukoError, match=r"notes\.txt \(about 3 MB needed\)$"):
            write_text("x" * 2_500_000, text)
        assert old.read_bytes() == before and torch.load(old)["weight"].shape == (100, 100)
        assert os.listdir(disk) == ["model.pt"]
        assert shutil.disk_usage(disk).used == used  # no removed temporary still held open


def test_exporting_a_learner_onto_a_full_disk(tiny_split, tmp_path):
    """The case users met: Learner.export on a full disk raised torch's "unexpected pos" RuntimeError; now the line
    names model.pkl and the disk holds nothing of it."""
    from leukoreport.training.two_phase import export_learner, train

    cfg = tiny_train_config()
    with small_tmpfs(tmp_path / "disk") as disk:
        learn, _, _ = train(tiny_split, cfg, seed=7, threads=1)
        used = shutil.disk_usage(disk).used
        out = (disk / "model.pkl").resolve()
        with pytest.raises(LeukoError) as caught:
            export_learner(learn, out)
        assert re.fullmatch(rf"no space left on device while writing {re.escape(out.as_posix())} "
                            r"\(about [1-9]\d* MB needed\)", str(caught.value))
        assert os.listdir(disk) == [] and shutil.disk_usage(disk).used == used
