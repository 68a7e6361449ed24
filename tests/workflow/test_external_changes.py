"""Adding, removing or renaming an external set on a finished run plans no training and no work for the other
sets (dry runs on copies of one tiny finished project); paths Snakemake would read as wildcards or path
variables stop the run at once with one line, on a fresh and on a finished project."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from leukoreport.base.checksums import sha256_file

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

SEEDS = [1, 2]
# Jobs that must never be planned when only the external sets change: training, the data they read, the
# split-only leakage audit training waits for, and the test split's evaluation (with the training embeddings).
NEVER = {"split", "cache", "weights", "leakage", "train", "reproducibility_train", "reproducibility", "evaluate_test",
         "plot_training", "plot_summary"}
PER_SET = ("dataset", "group", "name")  # the wildcards that name one data set


def snakemake(project: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """``python -m snakemake ARGS`` in `project` with leukoreport importable; stdout and stderr apart."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in [str(ROOT), os.environ.get("PYTHONPATH")] if p),
           "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=project, capture_output=True, text=True,
                          env=env, timeout=timeout)


def tiny_config(project: Path) -> dict:
    """The smoke config cut down (8 images per class, 48 px, one epoch per phase), every diagnostic, the claims
    and the reproducibility check on, one external set."""
    cfg = yaml.safe_load((project / "config" / "smoke.yaml").read_text())
    cfg.update(max_per_class=8, size=48, seeds=SEEDS, reproducibility_check=True,
               external={"external_monocyte": "data/external_monocyte"})
    for phase in cfg["phases"].values():
        phase["max_epochs"] = 1
    return cfg


def write_config(project: Path, cfg: dict, name: str = "run.yaml", sort_keys: bool = False) -> str:
    """Write `cfg` as the config file `name` in `project` (keys in `cfg`'s order unless `sort_keys`)."""
    (project / name).write_text(yaml.safe_dump(cfg, sort_keys=sort_keys))
    return name


@pytest.fixture(scope="module")
def finished(tmp_path_factory, copy_project):
    """A project on the tiny config, run to the end (every default target); returns (project, config)."""
    project = copy_project(tmp_path_factory.mktemp("finished") / "project")
    cfg = tiny_config(project)
    proc = snakemake(project, "--cores", "2", "--configfile", write_config(project, cfg))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return project, cfg


@pytest.fixture
def clone(finished, tmp_path):
    """A copy of the finished project (files hard-linked, modification times kept) and its config."""
    project, cfg = finished
    dest = tmp_path / "project"
    shutil.copytree(project, dest, symlinks=True, copy_function=os.link)
    return dest, copy.deepcopy(cfg)


def planned(stdout: str) -> list[tuple[str, dict]]:
    """(rule, wildcards) of every job in a dry run's output."""
    jobs = []
    for line in stdout.splitlines():
        words = line.split()
        if len(words) == 2 and words[0] in ("rule", "localrule") and words[1].endswith(":"):
            jobs.append((words[1][:-1], {}))
        elif line.startswith("    wildcards: ") and jobs:
            jobs[-1][1].update(item.split("=", 1) for item in line.removeprefix("    wildcards: ").split(", "))
    return jobs


def dry_run(project: Path, cfg: dict, sort_keys: bool = False) -> list[tuple[str, dict]]:
    """The jobs a dry run with config `cfg` plans in `project`."""
    name = write_config(project, cfg, "changed.yaml", sort_keys)
    proc = snakemake(project, "-n", "--cores", "2", "--configfile", name)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return planned(proc.stdout)


def per_set(jobs: list[tuple[str, dict]]) -> set[str]:
    """The data sets named by the jobs' dataset, group or name wildcard."""
    return {wc[key] for _, wc in jobs for key in PER_SET if key in wc}


def counts(jobs: list[tuple[str, dict]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for rule, _ in jobs:
        out[rule] = out.get(rule, 0) + 1
    return out


def test_finished_project_is_up_to_date(clone):
    project, cfg = clone
    assert dry_run(project, cfg) == []


def test_reordered_config_keys_train_nothing(clone):
    """Snakemake compares params by their text; the training params are passed in sorted key order."""
    project, cfg = clone
    jobs = dry_run(project, cfg, sort_keys=True)
    print("reordered:", counts(jobs))
    assert not NEVER & set(counts(jobs)) and per_set(jobs) == set()


def test_adding_an_external_set_trains_nothing_and_touches_no_other_set(clone):
    project, cfg = clone
    shutil.copytree(project / "data" / "external_monocyte", project / "data" / "second_lab")
    cfg["external"]["second_lab"] = "data/second_lab"
    jobs = dry_run(project, cfg)
    planned_rules = counts(jobs)
    print("add:", planned_rules)
    assert not NEVER & set(planned_rules), planned_rules
    assert per_set(jobs) == {"second_lab"}
    assert planned_rules["evaluate"] == len(SEEDS) and planned_rules["external"] == 1
    assert "shift" not in planned_rules and planned_rules["ensemble"] == 1  # shift, Grad-CAM, label audit inside
    assert planned_rules["leakage_external"] == 1  # the full audit hashes the new set; the split audit stays


def test_removing_an_external_set_plans_only_the_summaries(clone):
    project, cfg = clone
    cfg["external"] = {}
    jobs = dry_run(project, cfg)
    planned_rules = counts(jobs)
    print("remove:", planned_rules)
    assert not NEVER & set(planned_rules), planned_rules
    assert per_set(jobs) == set()
    assert {"evaluate", "ensemble", "plot_dataset"}.isdisjoint(planned_rules)


def test_renaming_an_external_set_evaluates_only_the_new_name(clone):
    project, cfg = clone
    cfg["external"] = {"monocytes": cfg["external"]["external_monocyte"]}
    jobs = dry_run(project, cfg)
    planned_rules = counts(jobs)
    print("rename:", planned_rules)
    assert not NEVER & set(planned_rules), planned_rules
    assert per_set(jobs) == {"monocytes"}
    assert planned_rules["evaluate"] == len(SEEDS)


def test_a_model_changed_since_training_stops_its_evaluation(clone):
    """A truncated model.pkl with its modification time kept looks finished to Snakemake; the next evaluation that
    reads it (here: of a newly added set) stops with one line naming both hashes and `--forcerun train`."""
    project, cfg = clone
    model = project / "results" / "splits" / "42" / "seeds" / "1" / "model.pkl"
    stat = model.stat()
    data = model.read_bytes()
    model.unlink()  # the clone's files are hard links to the finished run's: write a new file
    model.write_bytes(data[: len(data) // 2])
    os.utime(model, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    shutil.copytree(project / "data" / "external_monocyte", project / "data" / "second_lab")
    cfg["external"]["second_lab"] = "data/second_lab"
    target = "results/splits/42/seeds/1/second_lab/metrics.json"
    proc = snakemake(project, target, "--cores", "1", "--configfile", write_config(project, cfg, "changed.yaml"))
    assert proc.returncode != 0
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("error: ")]
    recorded = yaml.safe_load((model.parent / "train.json").read_text())["model_sha256"]
    assert lines[0] == (f"error: {model.relative_to(project).as_posix()}: SHA-256 {sha256_file(model)} differs from "
                        f"{recorded} recorded in {(model.parent / 'train.json').relative_to(project).as_posix()} "
                        "(changed or damaged since training); rerun its training with `snakemake --forcerun train` "
                        f"(or `--forcerun {model.relative_to(project).as_posix()}` for this seed only)")
    assert not (project / target).exists()


# ---- paths with { } < >: Snakemake reads {name} as a wildcard and <name> as a path variable (<results> would
# silently become `results`); the run stops before any job with one line naming the key.

SPECIAL = ["x{v}", "x<v>", "x<results>"]  # every key and each of { } < > alone: tests/config/test_path_characters.py


def special_configs(project: Path, cfg: dict, folder: str) -> list[tuple[str, dict, str]]:
    """(key, config, path) for every path-valued key set to a path ending in `folder`, which exists (a copy of
    the training data or of the external set, or of the claims file), so that only its name is wrong."""
    shutil.copytree(project / "data" / "external_monocyte", project / "data" / f"e{folder}")
    shutil.copytree(project / "data" / "leukocytes", project / "data" / f"d{folder}", copy_function=os.link)
    shutil.copy2(project / "config" / "claims.yaml", project / "config" / f"c{folder}.yaml")
    (project / "runs" / f"o{folder}").mkdir(parents=True)
    out = []
    for key, path in [("data_dir", f"data/d{folder}"), ("external.second", f"data/e{folder}"),
                      ("external.third.path", f"data/e{folder}"), ("compare_with", f"runs/o{folder}"),
                      ("claims", f"config/c{folder}.yaml")]:
        changed = copy.deepcopy(cfg)
        if key.startswith("external."):
            name = key.split(".")[1]
            changed["external"][name] = {"path": path, "source": "a lab"} if key.endswith(".path") else path
        else:
            changed[key] = path
        out.append((key, changed, path))
    return out


def assert_stops_with_one_line(project: Path, key: str, cfg: dict, path: str, *targets: str) -> None:
    proc = snakemake(project, *targets, "-n", "--cores", "1", "--configfile", write_config(project, cfg, "bad.yaml"))
    bad = next(c for c in path if c in "{}<>")
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert proc.stderr.splitlines() == [
        f"error: config key {key}: {path!r} contains {bad!r}, which Snakemake reads in file paths ({{name}} is a "
        "wildcard, <name> a path variable); rename the folder or file, or link it under a name without { } < >"]
    assert "Traceback" not in proc.stdout and "WildcardError" not in proc.stdout + proc.stderr


@pytest.mark.parametrize("folder", SPECIAL)
def test_special_characters_stop_a_finished_project(clone, folder):
    project, cfg = clone
    for key, changed, path in special_configs(project, cfg, folder):
        assert_stops_with_one_line(project, key, changed, path)
        if key == "compare_with":  # only built on request
            assert_stops_with_one_line(project, key, changed, path, "results/compare/compare.json")


@pytest.mark.parametrize("folder", SPECIAL[:2])
def test_special_characters_stop_a_fresh_project(tmp_path, copy_project, folder):
    project = copy_project(tmp_path / "fresh")
    cfg = tiny_config(project)
    for key, changed, path in special_configs(project, cfg, folder):
        assert_stops_with_one_line(project, key, changed, path)


def test_other_unusual_characters_work_like_any_path(clone):
    """A folder name with spaces, '#', '%', '&' and '=' is an ordinary path: the new set is planned like any
    other."""
    project, cfg = clone
    folder = "lab 2 #3 %&="
    shutil.copytree(project / "data" / "external_monocyte", project / "data" / folder)
    cfg["external"]["lab2"] = f"data/{folder}"
    jobs = dry_run(project, cfg)
    assert per_set(jobs) == {"lab2"}
    assert not NEVER & set(counts(jobs))


def test_external_leakage_stops_the_audit_not_training(tmp_path, copy_project_light, make_image_folder):
    """With `leakage: fail`, a copy of a training image in an external set stops the full audit (and so the
    reports) in one line, while training, which waits only for the split's audit, goes ahead."""
    project = copy_project_light(tmp_path / "project")
    make_image_folder(project / "images", per_class=6, size=24)
    make_image_folder(project / "external", per_class=1, size=30, seed=5, classes={"beta": (40, 200, 40)})
    shutil.copy2(project / "images" / "alpha" / "alpha_00.png", project / "external" / "beta" / "copy.png")
    cfg = yaml.safe_load((project / "config" / "smoke.yaml").read_text())
    cfg.update(data_dir="images", external={"ext": "external"}, max_per_class=None, leakage="fail", size=32,
               image_cache=False)
    for phase in cfg["phases"].values():
        phase["max_epochs"] = 1
    model, audit = "results/splits/42/seeds/1/model.pkl", "results/splits/42/audit/leakage.json"
    proc = snakemake(project, model, audit, "--keep-going", "--cores", "2", "--configfile", write_config(project, cfg))
    assert proc.returncode != 0
    errors = [line for line in proc.stdout.splitlines() + proc.stderr.splitlines() if line.startswith("error: ")]
    assert errors == ["error: leakage audit: 1 duplicate pair(s) found (1 exact, 0 near at Hamming distance <= 4): "
                      "1 training vs external (1 with different labels); pairs listed in "
                      "results/logs/leakage_external_split42.log; set leakage: warn to continue"], errors
    assert (project / model).is_file() and (project / "results/splits/42/audit/split_leakage.json").is_file()
    assert not (project / audit).exists()
