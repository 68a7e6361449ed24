"""Tests for the `leukoreport` command line (leukoreport.cli)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from leukoreport.cli import main, report_args, snakemake_args

COMPARE_OPTIONS = ("--out", "--dataset", "--resamples", "--seed", "--confidence", "--templates", "RUN_A", "RUN_B")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, fake_runs):
    root = tmp_path_factory.mktemp("cli")
    return fake_runs.worse_run(root / "worse"), fake_runs.baseline_run(root / "base")


def test_compare_writes_three_files(runs, tmp_path, capsys, fake_runs):
    a, b = runs
    out = tmp_path / "cmp"
    assert main(["compare", str(a), str(b), "--out", str(out), "--resamples", "199", "--seed", "3",
                 "--confidence", "0.9"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["compare.html", "compare.json", "compare.pdf"]
    result = json.loads((out / "compare.json").read_text())
    assert (result["n_resamples"], result["seed"], result["confidence"], result["dataset"]) == (199, 3, 0.9, "test")
    seed1 = result["per_seed"][0]
    assert seed1["mcnemar"]["c"] == fake_runs.PLANTED[seed1["seed"]]
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
    assert "usage: leukoreport" in out and "compare" in out and "examples:" in out


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


# --------------------------------------------------------------------------- run and report

def _job_counts(text: str) -> dict[str, int]:
    """The 'Job stats' table of a Snakemake dry run: rule -> count (without 'total')."""
    lines = text.splitlines()
    start = lines.index("Job stats:") + 3  # header, column names, dashes
    counts = {}
    for line in lines[start:]:
        parts = line.split()
        if len(parts) != 2:
            break
        counts[parts[0]] = int(parts[1])
    assert counts.pop("total") == sum(counts.values())
    return counts


@pytest.fixture(scope="module")
def project(tmp_path_factory, copy_project):
    return copy_project(tmp_path_factory.mktemp("project") / "leuko")


def test_snakemake_arguments():
    assert snakemake_args() == ["--cores", "all"]
    assert snakemake_args("2", Path("config/smoke.yaml"), True, ["--", "--forceall"]) == [
        "--cores", "2", "--configfile", "config/smoke.yaml", "--dry-run", "--", "--forceall"]
    assert report_args("1") == ["--cores", "1", "results/report/report.pdf", "results/report/summary.pdf",
                                "--forcerun", "report_html", "summary_html"]


def test_run_dry_run_plans_the_workflow(project, monkeypatch, capfd):
    monkeypatch.chdir(project)
    assert main(["run", "--cores", "1", "--dry-run"]) == 0
    out, err = capfd.readouterr()
    assert err.splitlines()[0] == "running: snakemake --cores 1 --dry-run"
    seeds = yaml.safe_load((project / "config" / "config.yaml").read_text())["seeds"]
    counts = _job_counts(out + err)
    assert counts["train"] == len(seeds) and counts["report_html"] == 1 and counts["all"] == 1
    assert "This was a dry-run" in out + err
    assert not (project / "results" / "splits").exists()


def test_run_passes_configfile_and_snakemake_args(project, monkeypatch, capfd):
    monkeypatch.chdir(project)
    assert main(["run", "-c", "1", "-n", "--configfile", "config/smoke.yaml", "--",
                 "results/splits/42/split.csv", "--quiet", "rules"]) == 0
    out, err = capfd.readouterr()
    assert err.splitlines()[0] == ("running: snakemake --cores 1 --configfile config/smoke.yaml --dry-run "
                                   "results/splits/42/split.csv --quiet rules")
    assert _job_counts(out + err) == {"split": 1}
    # the smoke config's seeds reach Snakemake: a dry run of everything trains once per smoke seed
    assert main(["run", "-n", "--configfile", "config/smoke.yaml", "--", "--quiet", "rules"]) == 0
    smoke = yaml.safe_load((project / "config" / "smoke.yaml").read_text())
    assert _job_counts("".join(capfd.readouterr()))["train"] == len(smoke["seeds"]) * len(smoke["split_seeds"])


def test_run_outside_a_project_exits_2(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: {tmp_path.resolve().as_posix()}: no Snakefile here; "
                   "run inside a leukoreport project folder\n")


def test_run_missing_configfile_exits_2(project, monkeypatch, capsys):
    monkeypatch.chdir(project)
    assert main(["run", "-n", "--configfile", "config/nope.yaml"]) == 2
    assert capsys.readouterr().err == "error: --configfile config/nope.yaml: file not found\n"


def test_run_snakemake_options_need_the_separator(capsys):
    assert main(["run", "--forceall"]) == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: --forceall" in err and "-- --forceall" in err


def test_run_returns_snakemake_exit_status(project, monkeypatch, capfd):
    monkeypatch.chdir(project)
    assert main(["run", "-n", "--", "no/such/target.txt"]) == 1
    assert "MissingRuleException" in "".join(capfd.readouterr())


def _plant_results(project: Path) -> None:
    """Empty stand-ins for every output of the workflow, marked up to date (snakemake --touch)."""
    listing = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", "--summary"], cwd=project,
                             capture_output=True, text=True, check=True).stdout
    for line in listing.splitlines()[1:]:
        path = project / line.split("\t")[0]
        if path.suffix:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        else:  # directory outputs: pairs, errors, robustness
            path.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", "--touch"], cwd=project,
                   capture_output=True, check=True)


def test_report_refuses_without_results(project, monkeypatch, capsys):
    monkeypatch.chdir(project)
    assert main(["report", "--cores", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: results/summary/metrics.csv: not found")


def test_report_dry_run_rerenders_only_the_reports(tmp_path, monkeypatch, capfd, copy_project):
    project = copy_project(tmp_path / "leuko")
    _plant_results(project)
    monkeypatch.chdir(project)
    assert main(["report", "--cores", "1", "--dry-run"]) == 0
    out, err = capfd.readouterr()
    assert err.splitlines()[0] == ("running: snakemake --cores 1 --dry-run results/report/report.pdf "
                                   "results/report/summary.pdf --forcerun report_html summary_html")
    assert _job_counts(out + err) == {"report_html": 1, "summary_html": 1, "report_pdf": 2}


# --------------------------------------------------------------------------- weights

def _plant_state_dict(path: Path, seed: int = 123) -> Path:
    import torch
    from torchvision.models import resnet18

    torch.manual_seed(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(resnet18(weights=None).state_dict(), path)
    return path


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch"


def test_weights_missing(torch_home, capsys):
    assert main(["weights"]) == 1
    out = capsys.readouterr().out
    expected = (torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth").as_posix()
    assert f"expected at: {expected}" in out and "status:      missing" in out
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in out and "pretrained: false" in out


def test_weights_present_with_size_and_hash(torch_home, capsys):
    path = _plant_state_dict(torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert main(["weights"]) == 0
    out = capsys.readouterr().out
    assert f"status:      present, {path.stat().st_size:,} bytes" in out and f"SHA-256 {digest[:16]}..." in out
    # the planted file is a ResNet18 state dict, but not torchvision's file: its hash differs from its name
    assert main(["weights", "--check"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {path.as_posix()}: SHA-256 starts with {digest[:8]}")


def test_weights_check_passes_for_a_matching_file(torch_home, monkeypatch, capsys):
    from leukoreport.training import weights

    source = _plant_state_dict(torch_home / "src.pth")
    prefix = hashlib.sha256(source.read_bytes()).hexdigest()[:8]
    monkeypatch.setattr(weights, "weights_url", lambda arch="resnet18": f"https://example.invalid/resnet18-{prefix}.pth")
    dest = torch_home / "hub" / "checkpoints" / f"resnet18-{prefix}.pth"
    dest.parent.mkdir(parents=True)
    shutil.copy(source, dest)
    assert main(["weights", "--check"]) == 0
    assert "check:       ok" in capsys.readouterr().out
    # a file whose hash matches its name but that is no state dict
    junk = torch_home / "junk.bin"
    junk.write_bytes(b"not a checkpoint")
    prefix = hashlib.sha256(junk.read_bytes()).hexdigest()[:8]
    monkeypatch.setattr(weights, "weights_url", lambda arch="resnet18": f"https://example.invalid/resnet18-{prefix}.pth")
    shutil.copy(junk, dest.parent / f"resnet18-{prefix}.pth")
    assert main(["weights", "--check"]) == 1
    assert "not a ResNet18 state dict" in capsys.readouterr().err


def test_weights_download(torch_home, monkeypatch, capsys):
    from leukoreport.training import weights

    source = _plant_state_dict(torch_home / "src.pth")
    def fake_download(url, dest, timeout):  # what weights.download_file does, without the network
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, dest)

    monkeypatch.setattr(weights, "download_file", fake_download)
    assert main(["weights", "--download"]) == 0
    out = capsys.readouterr().out
    assert "downloaded" in out and "present" in out
    assert weights.weights_path().read_bytes() == source.read_bytes()


def test_weights_failed_download_exits_1(torch_home, monkeypatch, capsys):
    from leukoreport.training import weights

    monkeypatch.setattr(weights, "weights_url", lambda arch="resnet18": "http://127.0.0.1:9/resnet18-f37072fd.pth")
    assert main(["weights", "--download"]) == 1
    printed = capsys.readouterr()
    assert printed.err.count("\n") == 1 and "could not be downloaded" in printed.err
    assert "status:      missing" in printed.out
    assert not list((torch_home / "hub" / "checkpoints").glob("*"))


# --------------------------------------------------------------------------- help of every command

HELP = {
    "predict": ("MODEL", "PATH", "--out", "--tta", "--batch-size", "--device", "--seed", "beta=0.25",
                "default: 64", "default: auto", "examples:"),
    "run": ("--configfile", "--cores", "--dry-run", "SNAKEMAKE_ARGS", "python -m snakemake --cores N",
            "snakemake --cores 2 --configfile config/smoke.yaml", "examples"),
    "report": ("--configfile", "--cores", "--dry-run", "--forcerun report_html summary_html",
               "results/report/summary.pdf", "examples:"),
    "weights": ("--download", "--check", "resnet18-f37072fd.pth", "TORCH_HOME", "examples:"),
}


@pytest.mark.parametrize("command", sorted(HELP))
def test_command_help(command, capsys):
    assert main([command, "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    for text in HELP[command]:
        assert " ".join(text.split()) in out, text


def test_top_level_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("run", "report", "predict", "weights", "compare"):
        assert f"    {command} " in out, command


def test_console_script_new_commands():
    exe = shutil.which("leukoreport") or str(Path(sys.executable).parent / "leukoreport")
    done = subprocess.run([exe, "predict", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "--tta" in done.stdout and done.stderr == ""


def test_predict_help_lists_the_image_suffixes(capsys):
    from leukoreport.data.images import IMAGE_SUFFIXES

    assert main(["predict", "--help"]) == 0
    assert "suffixes " + " ".join(sorted(IMAGE_SUFFIXES)) + ")" in " ".join(capsys.readouterr().out.split())
