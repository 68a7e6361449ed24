"""The report's "Run summary" section: model weights, the config as YAML and the benchmarks of every job."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import yaml

from leukoreport.base.errors import LeukoError
from leukoreport.report.number_format import DASH, hms, seconds, yes_no
from leukoreport.report.read_results import read_report_csv, read_report_json, require_key

__all__ = ["benchmark_rule", "benchmarks_section", "config_yaml", "weights_section"]


def _natural(text: str) -> list:
    """Sort key: 'train_seed7' before 'train_seed42'."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def benchmark_rule(stem: str) -> str:
    """The rule of a benchmark file: its name up to ``_split<N>`` (``evaluate_split42_seed1_test`` -> ``evaluate``);
    a name without that part stands for itself (``report_html``, ``external_lab2``)."""
    return re.sub(r"(?<=[a-z])_split\d+.*$", "", stem)


def _by_rule(jobs: list[dict]) -> list[dict]:
    """One row per rule: jobs, summed and longest wall time, highest peak RSS (the PDF's table; it grows with
    the rules, not with seeds × datasets)."""
    groups: dict[str, list[dict]] = {}
    for job in jobs:
        groups.setdefault(benchmark_rule(job["job"]), []).append(job)
    rows = []
    for rule, items in groups.items():
        walls = [j["_wall"] for j in items]
        peaks = [j["_rss"] for j in items if j["_rss"] is not None]
        rows.append({"rule": rule, "jobs": len(items), "seconds": seconds(sum(walls)), "hms": hms(sum(walls)),
                     "longest": hms(max(walls)), "max_rss": f"{max(peaks):.0f} MB" if peaks else DASH})
    return rows


def benchmarks_section(results_dir: Path) -> dict:
    """Wall time and peak memory per Snakemake job, from benchmarks/*.tsv, and the same per rule."""
    rows, total = [], 0.0
    files = sorted((results_dir / "benchmarks").glob("*.tsv"), key=lambda p: _natural(p.stem))
    for path in files:
        df = read_report_csv(path, ["s"], sep="\t")
        if df.empty:
            raise LeukoError(f"{path.as_posix()}: no rows")
        secs = pd.to_numeric(df["s"], errors="coerce")
        if secs.isna().any():
            raise LeukoError(f"{path.as_posix()}: column 's' has missing or non-numeric values")
        rss = pd.to_numeric(df["max_rss"], errors="coerce") if "max_rss" in df.columns else pd.Series(dtype=float)
        wall = float(secs.mean())  # one row per run; several rows only with repeat()
        total += wall
        peak = float(rss.max()) if rss.notna().any() else None
        rows.append({"job": path.stem, "seconds": seconds(wall), "hms": hms(wall),
                     "max_rss": DASH if peak is None else f"{peak:.0f} MB",
                     "runs": len(df), "_wall": wall, "_rss": peak})
    return {"rows": rows, "by_rule": _by_rule(rows), "total_seconds": seconds(total) if rows else DASH,
            "total_hms": hms(total) if rows else DASH}


def weights_section(results_dir: Path, arch: str = "resnet18") -> dict:
    """The weights job's record for the report's architecture (results/weights/ARCH.json)."""
    wpath = results_dir / "weights" / f"{arch}.json"
    w = read_report_json(wpath)
    return {"init": require_key(w, "init", wpath), "pretrained": yes_no(w.get("pretrained")),
            "path": w.get("path") or DASH, "sha256": w.get("sha256") or DASH}


def config_yaml(config: dict) -> str:
    """The config as block YAML (values YAML cannot represent are written as text)."""
    if not config:
        return "(empty)"
    try:
        text = yaml.safe_dump(config, sort_keys=False, allow_unicode=True, default_flow_style=False)
    except yaml.YAMLError:
        plain = json.loads(json.dumps(config, default=str))
        text = yaml.safe_dump(plain, sort_keys=False, allow_unicode=True, default_flow_style=False)
    return text.rstrip()
