"""Run one workflow step with its output in the rule's log and bad input reported as one line."""

from __future__ import annotations

import os
import sys
import traceback
from contextlib import contextmanager
from pathlib import Path

from leukoreport.errors import LeukoError


@contextmanager
def step_log(log_path: str | Path):
    """Redirect stdout/stderr (file descriptors too) to ``log_path``; on error print one line and exit 1."""
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
            yield
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
