"""Facts about the run the report describes: date, git commit, package versions, device and Python."""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from leukoreport.training.device import describe_device

__all__ = ["PACKAGES", "RunInfo", "collect_run_info", "git_commit", "package_versions"]


PACKAGES = ("torch", "torchvision", "fastai", "fastcore", "fasttransform", "numpy", "pandas",
            "scikit-learn", "matplotlib", "seaborn", "jinja2", "weasyprint", "snakemake", "pillow",
            "scikit-image", "cleanlab", "grad-cam")


@dataclass
class RunInfo:
    """Where and with what the report's run was made."""

    date: str
    git_commit: str
    packages: dict[str, str] = field(default_factory=dict)
    device: str = ""
    python: str = ""


def _git(project_dir: Path, *args: str) -> str | None:
    """stdout of `git args` in project_dir, or None if git is missing or fails."""
    try:
        done = subprocess.run(["git", *args], cwd=project_dir, capture_output=True, text=True,
                              timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def git_commit(project_dir: str | Path) -> str:
    """Short HEAD commit, '(modified)' appended when tracked files changed; 'unknown' outside a repo."""
    project_dir = Path(project_dir)
    head = _git(project_dir, "rev-parse", "--short", "HEAD")
    if not head or not head.strip():
        return "unknown"
    status = _git(project_dir, "status", "--porcelain", "--untracked-files=no")
    commit = head.strip()
    return f"{commit} (modified)" if status and status.strip() else commit


def package_versions(names: Iterable[str] = PACKAGES) -> dict[str, str]:
    """Installed version of each distribution, 'not installed' when absent."""
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def collect_run_info(project_dir: str | Path) -> RunInfo:
    """Date, git commit, package versions, device and Python of this run."""
    return RunInfo(
        date=datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z").strip(),
        git_commit=git_commit(project_dir),
        packages=package_versions(),
        device=describe_device("auto").text,
        python=f"{platform.python_version()} ({platform.python_implementation()}, {sys.platform})",
    )
