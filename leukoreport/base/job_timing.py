"""Seconds of the diagnostics a job runs besides its own step (e.g. Grad-CAM inside the evaluate job), written to a
small timing.json next to its outputs so that scripts/validity_cost.py can charge them to the diagnostics."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from leukoreport.base.atomic_io import read_json, write_json
from leukoreport.base.errors import LeukoError

__all__ = ["JobTiming", "read_timing"]


@dataclass
class JobTiming:
    """Wall (``s``) and process CPU (``cpu_time``) seconds per diagnostic run inside one job of rule ``rule``."""

    rule: str
    diagnostics: dict[str, dict[str, float]] = field(default_factory=dict)

    @contextmanager
    def measure(self, diagnostic: str) -> Iterator[None]:
        """Add the wall and CPU seconds of the block (its imports included) to ``diagnostic``."""
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            spent = self.diagnostics.setdefault(diagnostic, {"s": 0.0, "cpu_time": 0.0})
            spent["s"] += time.perf_counter() - wall
            spent["cpu_time"] += time.process_time() - cpu

    def as_dict(self) -> dict:
        """The timing.json content: ``{"rule": ..., "diagnostics": {name: {"s": ..., "cpu_time": ...}}}``."""
        return {"rule": self.rule, "diagnostics": {k: dict(v) for k, v in sorted(self.diagnostics.items())}}

    def write(self, path: str | Path) -> None:
        """Write ``as_dict()`` to ``path`` (atomically)."""
        write_json(self.as_dict(), path)


def read_timing(path: str | Path) -> JobTiming:
    """A timing.json back as a ``JobTiming``; LeukoError naming the file and key if it is malformed."""
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("rule"), str):
        raise LeukoError(f"{path}: key 'rule': missing or not a string")
    diagnostics = data.get("diagnostics")
    if not isinstance(diagnostics, dict):
        raise LeukoError(f"{path}: key 'diagnostics': missing or not an object")
    parsed: dict[str, dict[str, float]] = {}
    for name, spent in diagnostics.items():
        try:
            parsed[name] = {"s": float(spent["s"]), "cpu_time": float(spent["cpu_time"])}
        except (TypeError, KeyError, ValueError):
            raise LeukoError(f"{path}: key 'diagnostics.{name}': needs numbers 's' and 'cpu_time'") from None
    return JobTiming(data["rule"], parsed)
