"""Fixtures for the end-to-end workflow tests: running Snakemake in a copy of the project."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _snakemake(project: Path, *args: str, env: dict | None = None, timeout: int = 900):
    """Run snakemake in ``project``; returns the completed process (stdout and stderr merged)."""
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def _copy_project_light(dest: Path) -> Path:
    """Like ``copy_project`` but without the embedded data (bad-input runs bring their own)."""
    dest.mkdir(parents=True)
    for name in ["Snakefile", "workflow", "config", "templates"]:
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, dest / name)
    return dest


@pytest.fixture(scope="session")
def snakemake():
    """``snakemake(project, *args, env=None, timeout=900)``: run snakemake in `project`; returns the completed
    process (stdout and stderr merged)."""
    return _snakemake


@pytest.fixture(scope="session")
def copy_project_light():
    """``copy_project_light(dest)``: like ``copy_project`` but without the embedded data (bad-input runs bring their
    own); returns `dest`."""
    return _copy_project_light
