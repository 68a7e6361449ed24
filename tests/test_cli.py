"""Tests for the `leukoreport` command line (leukoreport.cli)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from test_compare import PLANTED, baseline_run, worse_run  # noqa: E402

from leukoreport.cli import main  # noqa: E402

COMPARE_OPTIONS = ("--out", "--dataset", "--resamples", "--seed", "--confidence", "--templates", "RUN_A", "RUN_B")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    return worse_run(root / "worse"), baseline_run(root / "base")


def test_compare_writes_three_files(runs, tmp_path, capsys):
    a, b = runs
    out = tmp_path / "cmp"
    assert main(["compare", str(a), str(b), "--out", str(out), "--resamples", "199", "--seed", "3",
                 "--confidence", "0.9"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["compare.html", "compare.json", "compare.pdf"]
    result = json.loads((out / "compare.json").read_text())
    assert (result["n_resamples"], result["seed"], result["confidence"], result["dataset"]) == (199, 3, 0.9, "test")
    seed1 = result["per_seed"][0]
    assert seed1["mcnemar"]["c"] == PLANTED[seed1["seed"]]
    printed = capsys.readouterr()
    assert printed.err == ""
    assert printed.out.splitlines()[0] == result["verdict"]
    assert f"wrote {(out / 'compare.pdf').as_posix()}" in printed.out


def test_missing_run_exits_2_with_one_line(runs, tmp_path, capsys):
    a, _ = runs
    missing = tmp_path / "no_such_run"
    assert main(["compare", str(a), str(missing), "--out", str(tmp_path / "cmp")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert missing.as_posix() in err and "not found" in err
    assert not (tmp_path / "cmp").exists()


def test_unknown_dataset_exits_2(runs, tmp_path, capsys):
    a, b = runs
    assert main(["compare", str(a), str(b), "--dataset", "ext", "--out", str(tmp_path / "cmp")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: run worse") and "no rows for dataset 'ext'" in err


@pytest.mark.parametrize("argv", [["compare", "a"], ["compare", "a", "b", "--confidence", "1.5"],
                                  ["compare", "a", "b", "--resamples", "0"], ["nope"], []])
def test_usage_errors_exit_2(argv, capsys):
    assert main(argv) == 2
    assert "usage: leukoreport" in capsys.readouterr().err


def test_top_level_help(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "usage: leukoreport" in out and "compare" in out and "example:" in out


def test_compare_help_mentions_every_option(capsys):
    assert main(["compare", "--help"]) == 0
    out = capsys.readouterr().out
    for option in COMPARE_OPTIONS:
        assert option in out, option
    assert "default: 9999" in out and "default: 0.95" in out and "example:" in out


def test_console_script_help():
    exe = shutil.which("leukoreport") or str(Path(sys.executable).parent / "leukoreport")
    done = subprocess.run([exe, "compare", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    for option in COMPARE_OPTIONS:
        assert option in done.stdout, option
