"""Scaling benchmark (`leukoreport bench --scale N1,N2,...`): the real Snakemake workflow on synthetic data sets
of growing size, with the wall time and peak RSS of every step read from Snakemake's ``benchmark:`` files.

For each size n: an ImageFolder of n images made from the embedded ones (seeded random crop, dihedral flip and
mild noise, each checked with the leakage audit's perceptual hash not to be a near duplicate of its source or of
another variant of it), a scratch copy of the project (Snakefile, workflow, templates, config, data) and one
workflow run (1 seed, ``epochs`` epochs per phase, at most ``max_batches`` training and validation batches per
epoch, random initialisation, the whole test split evaluated, every figure, both reports). The JSON gives per size
and step (Snakemake rule) the seconds summed over its jobs, the largest max_rss and the job count; then the slope of
log(seconds) and log(max_rss) against log(n) per step and whether each step meets the targets (time at most
linear, n log n for the leakage audit; peak RSS at most 8 GB at 50,000 images).

The synthetic images: ``bench.synthetic``; slopes and targets: ``bench.scaling_targets``; the figure:
``bench.scaling_plot``. torch is imported only to name the GPU (``training.device.describe_device``); the workflow
runs in its own processes.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from leukoreport.base.errors import LeukoError
from leukoreport.bench.scaling_plot import plot_scaling
from leukoreport.bench.scaling_targets import MB, targets
from leukoreport.bench.synthetic import folder_bytes, make_synthetic_folder
from leukoreport.training.device import describe_device

__all__ = ["BENCHMARK", "BENCHMARKS", "DEFAULT_SCRATCH", "PROJECT_FILES", "REPORT_FILES", "RULE", "ScaleSettings",
           "collect_benchmarks", "copy_project", "describe_machine", "finish", "format_scale", "parse_sizes",
           "recollect", "report_sizes", "rules_of_benchmarks", "run_from_args", "run_scale", "run_size",
           "scale_config"]

PROJECT_FILES = ("Snakefile", "workflow", "templates", "config", "data")
DEFAULT_SCRATCH = Path("results/bench/scale")
BENCHMARKS = Path("results/benchmarks")


@dataclass
class ScaleSettings:
    """What every size runs with (the workflow config is built from these by ``scale_config``)."""

    size: int = 224
    batch_size: int = 32
    epochs: int = 1  # per phase
    max_batches: int = 10  # training and validation batches per epoch: training costs the same at every n
    cores: str = "all"  # Snakemake --cores
    device: str = "auto"
    external: bool = True  # the 9 embedded monocytes as an external set
    seed: int = 0  # of the synthetic images
    train_seed: int = 1
    split_seed: int = 42
    max_distance: int = 4  # leakage_max_distance the synthetic images must stay above
    hash_size: int = 8


# --------------------------------------------------------------------------- one workflow run per size

def _cores(settings: ScaleSettings) -> int:
    """The number of cores ``--cores`` stands for."""
    return (os.cpu_count() or 1) if settings.cores == "all" else int(settings.cores)


def scale_config(base: dict, data_dir: str | Path, settings: ScaleSettings) -> dict:
    """The workflow config of one size: ``base`` (config/config.yaml) with the benchmark's settings."""
    import copy

    cfg = copy.deepcopy(base)
    cfg.update(data_dir=Path(data_dir).resolve().as_posix(),
               external={"external_monocyte": "data/external_monocyte"} if settings.external else {},
               split_seeds=[settings.split_seed], seeds=[settings.train_seed], max_per_class=None,
               pretrained=False, download_weights=False, size=settings.size, batch_size=settings.batch_size,
               max_batches=settings.max_batches, device=settings.device,
               train_threads=_cores(settings),
               leakage="warn", leakage_max_distance=settings.max_distance, leakage_hash_size=settings.hash_size)
    cfg.pop("variants", None)
    cfg.pop("reference", None)
    cfg["phases"] = {name: {**cfg["phases"][name], "max_epochs": settings.epochs} for name in ("frozen", "unfrozen")}
    return cfg


def copy_project(project: Path, dest: Path) -> Path:
    """A copy of the project's workflow, templates, config and data at ``dest`` (no results)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        src = Path(project) / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.is_file():
            shutil.copy2(src, dest / name)
        else:
            raise LeukoError(f"{src.as_posix()}: not found; run inside a leukoreport project folder")
    return dest


RULE = re.compile(r"^\s*(?:local)?rule (\w+):\s*$")
BENCHMARK = re.compile(r"^\s+benchmark: (\S+)\s*$")


def rules_of_benchmarks(log: str) -> dict[str, str]:
    """Benchmark file name -> rule, from Snakemake's job descriptions (``rule NAME:`` ... ``benchmark: PATH``)."""
    rule, found = None, {}
    for line in log.splitlines():
        if m := RULE.match(line):
            rule = m.group(1)
        elif (m := BENCHMARK.match(line)) and rule:
            found[Path(m.group(1)).name] = rule
    return found


def _rule_from_name(name: str) -> str:
    """Fallback when the log does not name the rule: the file stem without its split/seed/dataset part."""
    stem = Path(name).stem
    return re.sub(r"_?split\d+.*$", "", stem) or stem


def _number(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def collect_benchmarks(bench_dir: str | Path, log: str | Path | None = None) -> dict[str, dict]:
    """Per rule, in the order Snakemake ran them: ``seconds`` (the column ``s`` summed over the rule's jobs),
    ``cpu_seconds`` (the column ``cpu_time`` summed: the work, whatever else ran beside the job),
    ``max_rss_mb`` (the largest ``max_rss``, MB = 2**20 bytes; None when Snakemake sampled none), ``jobs`` and
    ``files`` (each benchmark file's own two numbers). ``log``: Snakemake's output, which names each job's rule."""
    import pandas as pd

    bench_dir = Path(bench_dir)
    text = Path(log).read_text() if isinstance(log, Path) else (log or "")
    rule_of = rules_of_benchmarks(text)
    order = {name: i for i, name in enumerate(rule_of)}
    files = sorted(bench_dir.glob("*.tsv"), key=lambda p: (order.get(p.name, len(order)), p.name))
    steps: dict[str, dict] = {}
    for path in files:
        table = pd.read_csv(path, sep="\t", na_values=["NA", "-"])
        if table.empty or "s" not in table or "max_rss" not in table:
            raise LeukoError(f"{path.as_posix()}: not a Snakemake benchmark file (columns s, max_rss)")
        seconds = float(table["s"].mean())
        cpu = _number(table["cpu_time"].mean()) if "cpu_time" in table else None
        rss = _number(table["max_rss"].max())
        step = steps.setdefault(rule_of.get(path.name, _rule_from_name(path.name)),
                                {"seconds": 0.0, "cpu_seconds": 0.0, "max_rss_mb": None, "jobs": 0, "files": {}})
        step["seconds"] = round(step["seconds"] + seconds, 4)
        step["cpu_seconds"] = round(step["cpu_seconds"] + (cpu or 0.0), 4)
        if rss is not None:
            step["max_rss_mb"] = rss if step["max_rss_mb"] is None else max(step["max_rss_mb"], rss)
        step["jobs"] += 1
        step["files"][path.name] = {"seconds": seconds, "cpu_seconds": cpu, "max_rss_mb": rss}
    return steps


def _split_counts(project: Path, split_seed: int) -> dict:
    import pandas as pd

    path = project / f"results/splits/{split_seed}/split.csv"
    if not path.is_file():
        return {}
    return {k: int(v) for k, v in pd.read_csv(path)["split"].value_counts().items()}


def _audit_counts(project: Path, split_seed: int) -> dict | None:
    """The workflow's own leakage audit of the synthetic set: images and duplicate pairs per scope."""
    path = project / f"results/splits/{split_seed}/audit/leakage.json"
    if not path.is_file():
        return None
    audit = json.loads(path.read_text())
    return {k: audit.get(k) for k in ("n_images", "max_distance", "n_pairs", "n_exact", "n_near", "by_scope")}


REPORT_FILES = ("report.pdf", "report.html", "summary.pdf", "summary.html")


def report_sizes(project: Path) -> dict:
    """Bytes (and pages, for a PDF) of each report under ``project``/results/report/."""
    from pypdf import PdfReader

    out = {}
    for name in REPORT_FILES:
        path = project / "results" / "report" / name
        if path.is_file():
            entry = {"bytes": path.stat().st_size}
            if path.suffix == ".pdf":
                entry["pages"] = len(PdfReader(path).pages)
            out[name] = entry
    return out


def run_size(n: int, project: str | Path, source: str | Path, scratch: str | Path, settings: ScaleSettings,
             keep: bool = False, copy_to: str | Path | None = None, echo=print) -> dict:
    """Make the synthetic folder of ``n`` images under ``scratch``/n<n>/, run the workflow on it in a fresh copy
    of ``project`` there and collect its benchmark files. ``copy_to``: a folder that keeps the benchmark files and
    Snakemake's log; without ``keep`` the scratch folder of this size is removed afterwards."""
    import yaml

    project, scratch = Path(project), Path(scratch)
    work = scratch / f"n{n}"
    images = work / "synthetic"
    run_dir = work / "project"
    processes = _cores(settings)
    echo(f"[n={n}] synthetic images -> {images.as_posix()}")
    synthetic = make_synthetic_folder(source, images, n, settings.seed, max_distance=settings.max_distance,
                                      hash_size=settings.hash_size, processes=processes)
    if not synthetic["check"]["ok"]:
        echo(f"[n={n}] warning: {synthetic['check']['pairs_within_max_distance']} near-duplicate pair(s) among "
             f"{synthetic['check']['images']} sampled images")
    if run_dir.exists():
        shutil.rmtree(run_dir)
    copy_project(project, run_dir)
    cfg = scale_config(yaml.safe_load((run_dir / "config" / "config.yaml").read_text()), images, settings)
    (run_dir / "scale.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    log_path = work / "snakemake.log"
    command = [sys.executable, "-m", "snakemake", "--cores", str(settings.cores), "--configfile", "scale.yaml"]
    echo(f"[n={n}] workflow in {run_dir.as_posix()} (log: {log_path.as_posix()})")
    start = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.run(command, cwd=run_dir, stdout=log, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        errors = [line.strip() for line in log_path.read_text().splitlines() if line.startswith("error: ")]
        raise LeukoError(f"scaling benchmark, n={n}: the workflow failed (exit {proc.returncode}) "
                         f"{'with ' + repr(errors[0]) if errors else ''}; Snakemake's output: {log_path.as_posix()}")
    steps = collect_benchmarks(run_dir / BENCHMARKS, log_path)
    record = {"n": int(n), "split": _split_counts(run_dir, settings.split_seed),
              "leakage_audit": _audit_counts(run_dir, settings.split_seed),
              "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "workflow_wall_seconds": round(wall, 2),
              "disk_bytes": {"synthetic": folder_bytes(images), "results": folder_bytes(run_dir / "results")},
              "synthetic": {k: v for k, v in synthetic.items() if k not in ("source",)},
              "reports": report_sizes(run_dir), "steps": steps}
    if copy_to is not None:
        dest = Path(copy_to) / f"n{n}"
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(run_dir / BENCHMARKS, dest / "benchmarks")
        shutil.copy2(log_path, dest / "snakemake.log")
        shutil.copy2(run_dir / "scale.yaml", dest / "scale.yaml")
    if not keep:
        shutil.rmtree(work)
    return record


# --------------------------------------------------------------------------- machine and JSON

def describe_machine(device: str = "auto") -> dict:
    """lscpu's main fields, memory, GPU (``describe_device``, when CUDA is used) and versions; ``slug`` names the
    JSON file."""
    info: dict = {}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    for key in ("Architecture", "Model name", "CPU(s)", "Thread(s) per core", "Core(s) per socket", "Socket(s)",
                "L3 cache", "Hypervisor vendor"):
        if key in fields:
            info[key] = fields[key]
    flags = fields.get("Flags", "").split()
    info["amx"] = "amx_tile" in flags
    info["avx512"] = any(f.startswith("avx512") for f in flags)
    info["cpus"] = os.cpu_count()
    with contextlib.suppress(ValueError, OSError, AttributeError):
        info["memory_gb"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1)
    info["platform"] = platform.platform()
    info["python"] = platform.python_version()
    gpu = describe_device(device).gpu if device != "cpu" else None
    info["gpu"] = gpu
    info["slug"] = (("cuda-" + re.sub(r"[^a-z0-9]+", "-", gpu.lower()).strip("-")) if gpu
                    else f"cpu-{os.cpu_count()}core")
    return info


def parse_sizes(text: str) -> list[int]:
    """``"2500,10000,50000"`` -> [2500, 10000, 50000] (positive integers, underscores allowed, sorted, unique)."""
    try:
        sizes = sorted({int(part.replace("_", "")) for part in str(text).split(",") if part.strip()})
    except ValueError:
        raise LeukoError(f"--scale {text}: expected comma-separated image counts, e.g. 2500,10000,50000") from None
    if not sizes or sizes[0] < 5:
        raise LeukoError(f"--scale {text}: every size must be at least 5 (one image per class)")
    return sizes


def run_scale(sizes: list[int], settings: ScaleSettings, out: str | Path, scratch: str | Path = DEFAULT_SCRATCH,
              keep: bool = False, project: str | Path = ".", source: str | Path = "data/leukocytes",
              echo=print) -> dict:
    """Run every size, then write ``out`` (JSON) and the PNG beside it; the benchmark files and Snakemake's log
    of each size are kept in the folder ``out`` without suffix. An earlier JSON at ``out`` with the same
    settings and machine keeps its other sizes (a size measured again is replaced)."""
    out = Path(out)
    if not (Path(project) / "Snakefile").is_file():
        raise LeukoError(f"{Path(project).resolve().as_posix()}: no Snakefile here; run inside a leukoreport project")
    machine = describe_machine(settings.device)
    report = {"benchmark": "leukoreport workflow scaling", "machine": machine,
              "settings": {**asdict(settings), "seeds": [settings.train_seed], "pretrained": False,
                           "external": ["external_monocyte"] if settings.external else []},
              "results": {}}
    if out.is_file():
        try:
            old = json.loads(out.read_text())
        except ValueError:
            old = {}
        same_machine = {k: v for k, v in old.get("machine", {}).items() if k != "platform"} == \
            {k: v for k, v in machine.items() if k != "platform"}
        if old.get("settings") == report["settings"] and same_machine:
            report["results"] = {str(k): v for k, v in old.get("results", {}).items()}
            echo(f"adding to {out.as_posix()} (sizes {', '.join(report['results']) or 'none'} measured before)")
    for n in sizes:
        record = run_size(n, project, source, scratch, settings, keep=keep, copy_to=out.with_suffix(""), echo=echo)
        report["results"][str(n)] = record
        report["results"] = dict(sorted(report["results"].items(), key=lambda kv: int(kv[0])))
        finish(report, out)  # after every size, so that a long run leaves its finished sizes
    return report


def recollect(out: str | Path) -> dict:
    """Re-read every size's kept benchmark files (the folder ``out`` without suffix) into the JSON ``out`` and
    rewrite it and its PNG: for a change in what is derived from them (e.g. cpu_seconds), without rerunning."""
    out = Path(out)
    report = json.loads(out.read_text())
    for n, record in report["results"].items():
        kept = out.with_suffix("") / f"n{n}"
        record["steps"] = collect_benchmarks(kept / "benchmarks", kept / "snakemake.log")
    finish(report, out)
    return report


def finish(report: dict, out: Path) -> None:
    """Add sizes, slopes and target verdicts; write the JSON and the PNG."""
    from leukoreport.base.atomic_io import write_json

    results = {int(n): r for n, r in report["results"].items()}
    report["sizes"] = sorted(results)
    report["targets"] = targets(results)
    report["notes"] = [
        "seconds: the benchmark file's s (wall) summed over the rule's jobs; cpu_seconds: its cpu_time summed, the "
        "basis of the time slopes (targets.time_basis), since jobs overlapping on 2 cores inflate each other's wall "
        "time; Snakemake samples cpu_time (each second for 30 s, then every 30 s), so the CPU after a job's last "
        "sample is missing: both are kept, and wall_time_slope gives the slope of the wall seconds beside; "
        "max_rss_mb: the largest max_rss of the rule's jobs in MB = 2**20 bytes (None: finished before the first "
        "sample); jobs: benchmark files of the rule",
        f"training: at most {report['settings']['max_batches']} training and validation batches per epoch "
        "(config max_batches), so its growth is data loading, caching and export only",
        "slopes: least-squares slope of log(value) against log(n); rss_mb_at_50000 is extrapolated with the RSS "
        "slope (never below flat) when 50000 was not measured",
        "the leakage pair search is multi-index hashing (max_distance + 1 chunks of the hash, rows sharing a "
        "chunk value compared; about n log n); hashing the images, linear in n, dominates the step",
        "reports: bytes and pages of the four reports of each size (results/report/)",
    ]
    write_json(report, out)
    plot_scaling(report, out.with_suffix(".png"))


def format_scale(report: dict) -> str:
    """A plain-text table: seconds and peak RSS per step and size, the slopes and the verdicts."""
    sizes = report["sizes"]
    results = {int(n): r for n, r in report["results"].items()}
    steps = list(dict.fromkeys(s for n in sizes for s in results[n]["steps"]))
    key = report["targets"].get("time_basis", "seconds")
    unit = "cpu s" if key == "cpu_seconds" else "s"
    head = f"{'step':<18}" + "".join(f"{f'n={n} {unit}':>13}{'MB':>8}" for n in sizes) + f"{'slope':>8}{'ok':>6}"
    lines = [head]
    for step in steps:
        cells = ""
        for n in sizes:
            s = results[n]["steps"].get(step)
            cells += f"{s[key]:>13.1f}{(s['max_rss_mb'] or float('nan')):>8.0f}" if s else f"{'':>21}"
        verdict = report["targets"]["steps"].get(step, {})
        slope = verdict.get("time_slope")
        checks = (verdict.get("time_ok"), verdict.get("rss_ok"))
        ok = "NO" if False in checks else ("yes" if checks == (True, True) else "-")
        lines.append(f"{step:<18}{cells}{'' if slope is None else f'{slope:.2f}':>8}{ok:>6}")
    total = "".join(f"{sum(s[key] for s in results[n]['steps'].values()):>13.1f}{'':>8}" for n in sizes)
    lines.append(f"{'sum of steps':<18}{total}")
    wall = "".join(f"{results[n]['workflow_wall_seconds']:>13.1f}{'':>8}" for n in sizes
                   if "workflow_wall_seconds" in results[n])
    if wall:
        lines.append(f"{'workflow wall s':<18}{wall}")
    for name in REPORT_FILES:
        cells = []
        for n in sizes:
            entry = results[n].get("reports", {}).get(name)
            if entry:
                pages = f", {entry['pages']} pages" if "pages" in entry else ""
                cells.append(f"n={n}: {entry['bytes'] / MB:.1f} MB{pages}")
        if cells:
            lines.append(f"{name:<18}" + "; ".join(cells))
    lines.append("targets met: " + {True: "yes", False: f"no ({', '.join(report['targets']['failing'])})",
                                    None: "not decided (need more sizes)"}[report["targets"]["all_ok"]])
    return "\n".join(lines)


def run_from_args(args) -> int:
    """`leukoreport bench --scale ...`: the scaling benchmark with the bench parser's options."""
    settings = ScaleSettings(size=args.size, batch_size=args.batch_size, epochs=args.epochs, device=args.device,
                             cores=str(args.cores))
    sizes = parse_sizes(args.scale)
    out = args.out or Path("results/bench") / f"scale-{describe_machine(settings.device)['slug']}.json"
    report = run_scale(sizes, settings, out, args.scratch, args.keep, ".", args.data_dir)
    print(format_scale(report))
    print(f"written: {Path(out).as_posix()} and {Path(out).with_suffix('.png').as_posix()}")
    return 0
