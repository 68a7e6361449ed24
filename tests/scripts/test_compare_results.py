"""scripts/compare_results.py: two results folders compared value by value, timings and paths ignored."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "compare_results.py"


def write_results(root: Path, accuracy: float, seconds: float, extra: bool = False) -> Path:
    """A tiny results folder: one metrics.json, one CSV, a log and a benchmark file."""
    run = root / "results" / "splits" / "42" / "seeds" / "1" / "test"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({"accuracy": accuracy, "n": 10, "phase_seconds": [seconds],
                                                  "model": str(root / "results" / "model.pkl")}))
    (run / "predictions.csv").write_text(f"path,prob_a,seconds\nx.png,{accuracy},{seconds}\n")
    (root / "results" / "logs").mkdir()
    (root / "results" / "logs" / "train.log").write_text(f"took {seconds} s\n")
    if extra:
        (run / "extra.json").write_text("{}")
    return root / "results"


def run(a: Path, b: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), str(a), str(b), *args], capture_output=True, text=True)


def test_same_numbers_with_other_timings_and_paths_compare_equal(tmp_path):
    a = write_results(tmp_path / "a", 0.5, 1.0)
    b = write_results(tmp_path / "b", 0.5, 7.0)
    proc = run(a, b)
    assert proc.returncode == 0, proc.stdout
    assert "2 CSV/TSV/JSON files compared, 0 difference(s)" in proc.stdout


def test_a_changed_number_and_a_missing_file_are_reported(tmp_path):
    a = write_results(tmp_path / "a", 0.5, 1.0)
    b = write_results(tmp_path / "b", 0.25, 1.0, extra=True)
    proc = run(a, b)
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert "splits/42/seeds/1/test/metrics.json.accuracy: 0.5 != 0.25" in lines
    assert "splits/42/seeds/1/test/predictions.csv:2 prob_a: '0.5' != '0.25'" in lines
    assert "splits/42/seeds/1/test/extra.json: only in after" in lines
    assert lines[-1].startswith("2 CSV/TSV/JSON files compared, 3 difference(s)")
    assert run(a, b, "--tolerance", "0.3").stdout.splitlines()[-1].startswith("2 CSV/TSV/JSON files compared, 1 ")
