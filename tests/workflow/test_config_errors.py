"""Config errors through the real `snakemake` command: one line `error: config key ...` on stderr, exit status 1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]

def run_snakemake(config: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    """A dry run of the project's Snakefile with ``config`` as the whole config file (working folder: the project)."""
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--configfile", str(path)],
                          cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)


def smoke() -> dict:
    return yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())


def edit(cfg: dict, dotted: str, value) -> dict:
    """``cfg`` with the key at ``a.b.c`` set to ``value``."""
    *parents, last = dotted.split(".")
    node = cfg
    for part in parents:
        node = node[part]
    node[last] = value
    return cfg


@pytest.mark.parametrize("dotted, value, expected", [
    ("seeds", "abc", "error: config key seeds: 'abc' is not of type 'array'"),
    ("phases.frozen.lr", -1, "error: config key phases.frozen.lr: -1 is less than or equal to the minimum of 0"),
    ("data_dir", "no/such/folder", "error: config key data_dir: folder not found: no/such/folder"),
    ("variants", {"a": {"seeds": [1]}},
     "error: config key variants.a.seeds: must be the same for every variant; set it at the top level"),
])
def test_config_error_is_one_line_on_stderr(tmp_path, dotted, value, expected):
    """stderr holds exactly the error line, stdout no trace; the exit status is 1."""
    proc = run_snakemake(edit(smoke(), dotted, value), tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [expected]
    assert "Traceback" not in proc.stdout and 'File "' not in proc.stdout and "LeukoError" not in proc.stdout


@pytest.mark.parametrize("claim_edit, expected", [
    ({"kind": "bogus"}, "key kind: 'bogus' is not one of metric, per_class, errors, confusion, overfitting, "
                        "balance, external, reproducibility, untestable"),
    ({"value": None}, "key value: missing (required for kind metric)"),
])
def test_bad_claims_file_is_one_line_naming_the_claim_and_key(tmp_path, claim_edit, expected):
    """A claims file with an unknown kind or a missing field stops the dry run before any job, in one line."""
    claims = yaml.safe_load((ROOT / "config" / "claims.yaml").read_text())
    first = claims["claims"][0]
    for key, value in claim_edit.items():
        if value is None:
            del first[key]
        else:
            first[key] = value
    path = tmp_path / "claims.yaml"
    path.write_text(yaml.safe_dump(claims, sort_keys=False))
    proc = run_snakemake({**smoke(), "claims": str(path)}, tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [f"error: claims file {path}: claim '{first['id']}': {expected}"]


def test_valid_config_dry_run_passes(tmp_path):
    """The same command with the unedited smoke config plans its jobs (exit 0): the check is not always failing."""
    proc = run_snakemake(smoke(), tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "error:" not in proc.stderr
