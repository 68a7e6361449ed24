"""Run one workflow step with its output in the rule's log and bad input reported as one line; progress lines
go to the log and to the console that runs the workflow."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from leukoreport.base.errors import LeukoError

__all__ = ["StepLog", "eta_seconds", "rough_duration", "step_log"]


class StepLog:
    """What ``step_log`` yields: ``progress(line)`` writes one line to the rule's log and to the saved console."""

    def __init__(self, log_fd: int, console_fd: int):
        self._log_fd, self._console_fd = log_fd, console_fd

    def progress(self, line: str) -> None:
        """``line`` to the log and to the console, at once (unbuffered); a closed console is no error."""
        data = (line.rstrip("\n") + "\n").encode()
        sys.stdout.flush()
        sys.stderr.flush()
        os.write(self._log_fd, data)
        with suppress(OSError):
            os.write(self._console_fd, data)


@contextmanager
def step_log(log_path: str | Path) -> Iterator[StepLog]:
    """Redirect stdout/stderr (file descriptors too) to ``log_path``; on error print one line and exit 1.

    Yields a ``StepLog`` whose ``progress`` also reaches the original stderr (the Snakemake console)."""
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved_err = os.dup(2)
    saved_out = os.dup(1)
    with open(log_path, "w") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        error = None
        try:
            yield StepLog(log.fileno(), saved_err)
        except LeukoError as exc:
            error = f"error: {exc}"
            print(error, flush=True)
        except Exception as exc:  # unexpected: full traceback in the log, one line on the console
            traceback.print_exc()
            error = f"error: {type(exc).__name__}: {' '.join(str(exc).split())} (traceback in {log_path})"
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved_out, 1)
            os.dup2(saved_err, 2)
            os.close(saved_out)
            os.close(saved_err)
    if error:
        print(error, file=sys.stderr, flush=True)
        sys.exit(1)


def eta_seconds(seconds_per_step: float, done: int, total: int) -> float:
    """Estimated seconds left: the mean time of the ``done`` steps times the ``total - done`` still to run."""
    return seconds_per_step * max(0, total - done)


def rough_duration(seconds: float) -> str:
    """A duration for a progress line: 7.4 -> '7.4 s', 146.2 -> '146 s', 1380 -> '23 min', 9000 -> '2.5 h'."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 180:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
