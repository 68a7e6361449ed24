"""The per-run lock: a second holder is refused with the first one's pid; the file goes when the block ends."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from leukoreport.base.errors import LeukoError
from leukoreport.base.job_lock import exclusive_lock


def test_a_second_holder_in_another_process_is_refused_with_the_pid(tmp_path):
    lock = tmp_path / "run" / ".train.lock"
    with exclusive_lock(lock, "training of seed 1"):
        assert lock.read_text() == f"{os.getpid()}\n"
        code = ("import sys; from leukoreport.base.job_lock import exclusive_lock\n"
                "from leukoreport.base.errors import LeukoError\n"
                f"try:\n    with exclusive_lock({str(lock)!r}, 'training of seed 1'): pass\n"
                "except LeukoError as e:\n    print(e); sys.exit(3)\n")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert out.returncode == 3
        assert out.stdout.strip() == (f"training of seed 1: another process (pid {os.getpid()}) is still running it, "
                                      f"holding {lock.as_posix()}; wait for it to end or stop it "
                                      f"(kill {os.getpid()}), then rerun")
    assert not lock.exists()


def test_the_lock_is_free_again_after_an_error(tmp_path):
    lock = tmp_path / ".lock"
    with pytest.raises(ValueError), exclusive_lock(lock, "x"):
        raise ValueError("boom")
    with exclusive_lock(lock, "x"):
        pass


def test_a_lock_file_left_by_a_killed_process_does_not_block(tmp_path):
    lock = tmp_path / ".lock"
    lock.write_text("12345\n")  # the file stays after a kill -9, the lock (held by the dead process) does not
    with exclusive_lock(lock, "x"):
        assert lock.read_text() == f"{os.getpid()}\n"


def test_same_process_twice_is_refused_too(tmp_path):
    lock = tmp_path / ".lock"
    with exclusive_lock(lock, "x"), pytest.raises(LeukoError, match="another process"), exclusive_lock(lock, "x"):
        pass
