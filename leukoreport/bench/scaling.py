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

No torch or fastai here: the workflow runs in its own processes.
"""

from __future__ import annotations

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

import numpy as np

from leukoreport.base.errors import LeukoError

PROJECT_FILES = ("Snakefile", "workflow", "templates", "config", "data")
DEFAULT_SCRATCH = Path("results/bench/scale")
BENCHMARKS = Path("results/benchmarks")
SUFFIXES = (".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff")
MAX_SLOPE = 1.1  # time may grow at most linearly (with some slack for noise)
MIN_SECONDS = 5.0  # a step under this at every size is too short for a slope (start-up and sampling noise)
NLOGN_STEPS = ("leakage",)  # steps allowed n log n (a pair search)
RSS_LIMIT_BYTES = 8e9  # 8 GB peak RSS ...
RSS_AT = 50_000  # ... at 50,000 images
MB = 2**20  # Snakemake's max_rss unit (psutil bytes / 1024 / 1024)
SYNTHETIC_VERSION = 1
MAX_ATTEMPTS = 50


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


# --------------------------------------------------------------------------- synthetic images

def _visible(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def _sources(source: Path) -> list[tuple[str, list[Path]]]:
    """(class, image files) per class folder of the ImageFolder ``source``, sorted."""
    source = Path(source)
    if not source.is_dir():
        raise LeukoError(f"{source.as_posix()}: folder not found (the images the synthetic data are made from)")
    classes = [(d.name, [f for f in _visible(d) if f.is_file() and f.suffix.lower() in SUFFIXES])
               for d in _visible(source) if d.is_dir()]
    classes = [(name, files) for name, files in classes if files]
    if not classes:
        raise LeukoError(f"{source.as_posix()}: no class folders with images")
    return classes


def _plan(classes: list[tuple[str, list[Path]]], n: int) -> list[tuple[int, str, int, str, int]]:
    """One job per source image: (class index, class, source index, source path, variants to make).

    n is spread over the classes as evenly as possible; within a class image j is variant j // k of source j % k.
    """
    k = len(classes)
    jobs = []
    for ci, (name, files) in enumerate(classes):
        count = n // k + (1 if ci < n % k else 0)
        for si, path in enumerate(files):
            variants = len(range(si, count, len(files)))
            if variants:
                jobs.append((ci, name, si, str(path), variants))
    return jobs


def _hamming(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def _draw(rgb: np.ndarray, rng: np.random.Generator):
    """One variant: random crop of 72-92% of each side, one of the 8 dihedral flips, resize back to the source
    size, uniform noise of -4..4 grey levels per pixel and channel."""
    from PIL import Image

    h, w = rgb.shape[:2]
    frac = rng.uniform(0.72, 0.92)
    ch, cw = max(1, round(h * frac)), max(1, round(w * frac))
    y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    crop = rgb[y:y + ch, x:x + cw]
    d = int(rng.integers(8))
    crop = np.rot90(crop, d % 4)
    if d >= 4:
        crop = crop[:, ::-1]
    img = Image.fromarray(np.ascontiguousarray(crop)).resize((w, h), Image.Resampling.BICUBIC)
    noisy = np.asarray(img).astype(np.int16) + rng.integers(-4, 5, (h, w, 3), dtype=np.int16)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def _phash(data: bytes | Path, hash_size: int) -> str:
    """The leakage audit's perceptual hash (``leakage.hash_images``: RGB, ``imagehash.phash``) of a file or of
    encoded image bytes, without its table."""
    import io

    import imagehash
    from PIL import Image

    with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as img:
        return str(imagehash.phash(img.convert("RGB"), hash_size=hash_size))


def _make_variants(job: tuple, out: str, seed: int, max_distance: int, hash_size: int) -> list[dict]:
    """Write the variants of one source image; each is redrawn until its perceptual hash (the leakage audit's,
    of the encoded JPEG, as the audit will read it) is farther than ``max_distance`` from the source and from
    every earlier variant of the source."""
    import io

    from PIL import Image

    ci, name, si, path, count = job
    path, out = Path(path), Path(out)
    with Image.open(path) as img:
        rgb = np.asarray(img.convert("RGB"))
    seen = [_phash(path, hash_size)]
    rows = []
    for v in range(count):
        rel = f"{name}/{path.stem}_v{v:03d}.jpg"
        for attempt in range(MAX_ATTEMPTS):
            rng = np.random.default_rng([seed, ci, si, v, attempt])
            buffer = io.BytesIO()
            _draw(rgb, rng).save(buffer, format="JPEG", quality=92)
            data = buffer.getvalue()
            phash = _phash(data, hash_size)
            if min(_hamming(phash, s) for s in seen) > max_distance:
                (out / rel).write_bytes(data)
                break
        else:
            raise LeukoError(f"{path.as_posix()}: no variant {v} farther than {max_distance} bits from the others "
                             f"after {MAX_ATTEMPTS} draws")
        seen.append(phash)
        rows.append({"path": rel, "source": path.as_posix(), "variant": v, "attempts": attempt + 1, "phash": phash})
    return rows


def _make_variants_star(args: tuple) -> list[dict]:
    return _make_variants(*args)


def _marker(out: Path) -> Path:
    return out.parent / f"{out.name}.json"


def _folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file() and not f.is_symlink())


def check_synthetic(out: Path, rows: list[dict], sample: int = 1000, seed: int = 0, max_distance: int = 4,
                    hash_size: int = 8) -> dict:
    """Hash a sample of generated images and their sources with the leakage audit (``leakage.hash_images``,
    ``find_pairs``): whole sources are drawn at random (all their variants and the source itself) until
    ``sample`` images; returns the pairs found at ``max_distance`` and the smallest distance in the sample."""
    from leukoreport.data.leakage import _pack, find_pairs, hash_images

    by_source: dict[str, list[str]] = {}
    for row in rows:
        by_source.setdefault(row["source"], []).append(Path(out, row["path"]).resolve().as_posix())
    order = np.random.default_rng(seed).permutation(sorted(by_source))
    paths: list[str] = []
    chosen = 0
    for source in order:
        if len(paths) >= sample:
            break
        paths += [Path(source).resolve().as_posix(), *by_source[source]]
        chosen += 1
    table = hash_images(paths, "/", hash_size).assign(label="x", group="train")
    pairs = find_pairs(table, max_distance)
    words = _pack(list(table["phash"]))
    dist = sum(np.bitwise_count(words[:, w, None] ^ words[None, :, w]).astype(np.int64) for w in range(words.shape[1]))
    np.fill_diagonal(dist, np.iinfo(np.int64).max)
    return {"images": len(table), "sources": chosen, "max_distance": max_distance,
            "pairs_within_max_distance": int(len(pairs)),
            "min_distance": int(dist.min()) if len(table) > 1 else None, "ok": len(pairs) == 0}


def make_synthetic_folder(source: str | Path, out: str | Path, n: int, seed: int = 0, *, max_distance: int = 4,
                          hash_size: int = 8, processes: int = 1, check_sample: int = 1000) -> dict:
    """An ImageFolder of ``n`` JPEG images at ``out`` made from the ImageFolder ``source`` (same classes, n spread
    evenly; see ``_draw``), seeded per image: the same arguments give the same bytes. A folder made earlier with
    the same arguments (``out``.json beside it) is reused. Returns what was made and the sample check."""
    source, out = Path(source), Path(out)
    classes = _sources(source)
    wanted = {"version": SYNTHETIC_VERSION, "source": source.resolve().as_posix(), "n": int(n), "seed": int(seed),
              "max_distance": int(max_distance), "hash_size": int(hash_size)}
    marker = _marker(out)
    if marker.is_file() and out.is_dir():
        done = json.loads(marker.read_text())
        if {k: done.get(k) for k in wanted} == wanted:
            return {**done, "reused": True}
    if out.exists():
        shutil.rmtree(out)
    marker.unlink(missing_ok=True)
    for name, _ in classes:
        (out / name).mkdir(parents=True, exist_ok=True)
    jobs = [(job, str(out), seed, max_distance, hash_size) for job in _plan(classes, n)]
    start = time.perf_counter()
    if processes > 1:
        import multiprocessing

        methods = multiprocessing.get_all_start_methods()  # fork where there is one: workers use PIL and numpy only
        with multiprocessing.get_context("fork" if "fork" in methods else "spawn").Pool(processes) as pool:
            parts = pool.map(_make_variants_star, jobs, chunksize=max(1, len(jobs) // (processes * 8)))
    else:
        parts = [_make_variants_star(job) for job in jobs]
    rows = [row for part in parts for row in part]
    seconds = time.perf_counter() - start
    check = check_synthetic(out, rows, check_sample, seed, max_distance, hash_size)
    result = {**wanted, "images": len(rows), "classes": [name for name, _ in classes],
              "sources_used": len(jobs), "max_variants_per_source": max((j[0][4] for j in jobs), default=0),
              "redrawn": sum(r["attempts"] - 1 for r in rows), "seconds": round(seconds, 2),
              "bytes": _folder_bytes(out), "check": check}
    marker.write_text(json.dumps(result, indent=2) + "\n")
    return {**result, "reused": False}


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
              "disk_bytes": {"synthetic": _folder_bytes(images), "results": _folder_bytes(run_dir / "results")},
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


# --------------------------------------------------------------------------- growth and targets

def growth_exponents(table: dict[int, dict[str, float | None]]) -> dict[str, float | None]:
    """Per step, the least-squares slope of log(value) against log(n) over the sizes with a positive value:
    ``{n: {step: value}}`` -> ``{step: slope}`` (None with fewer than two sizes)."""
    steps = list(dict.fromkeys(step for row in table.values() for step in row))
    out = {}
    for step in steps:
        points = [(int(n), float(row[step])) for n, row in table.items()
                  if row.get(step) is not None and math.isfinite(float(row[step])) and float(row[step]) > 0]
        if len({n for n, _ in points}) < 2:
            out[step] = None
            continue
        x, y = np.log([p[0] for p in points]), np.log([p[1] for p in points])
        out[step] = round(float(np.polyfit(x, y, 1)[0]), 4)
    return out


def nlogn_slope(sizes: list[int]) -> float:
    """The log-log slope n log n shows over ``sizes`` (about 1 + 1/ln n)."""
    sizes = sorted(set(int(n) for n in sizes))
    if len(sizes) < 2:
        return 1.0 + 1.0 / math.log(max(sizes[0] if sizes else 3, 3))
    x = np.log(sizes)
    return float(np.polyfit(x, x + np.log(x), 1)[0])


def targets(results: dict[int, dict]) -> dict:
    """Per step: the time slope (of CPU seconds when every benchmark has them: jobs that overlap on few cores
    inflate each other's wall time) against its limit (``MAX_SLOPE``; n log n's slope + 0.1 for ``NLOGN_STEPS``;
    steps under ``MIN_SECONDS`` at every size pass unjudged) and the peak RSS at ``RSS_AT`` images (measured, else extrapolated with the RSS slope) against 8 GB."""
    sizes = sorted(results)
    cpu = all("cpu_seconds" in v for n in sizes for v in results[n]["steps"].values())
    basis = "cpu_seconds" if cpu else "seconds"
    seconds = {n: {s: v[basis] for s, v in results[n]["steps"].items()} for n in sizes}
    rss = {n: {s: v["max_rss_mb"] for s, v in results[n]["steps"].items()} for n in sizes}
    time_slopes, rss_slopes = growth_exponents(seconds), growth_exponents(rss)
    wall_slopes = growth_exponents({n: {s: v["seconds"] for s, v in results[n]["steps"].items()} for n in sizes})
    limit_mb = RSS_LIMIT_BYTES / MB
    steps = {}
    for step, slope in time_slopes.items():
        limit = round(nlogn_slope(sizes) + (MAX_SLOPE - 1.0), 3) if step in NLOGN_STEPS else MAX_SLOPE
        known = [n for n in sizes if rss[n].get(step) is not None]
        if RSS_AT in known:
            at, how = rss[RSS_AT][step], "measured"
        elif known and rss_slopes.get(step) is not None:
            n0 = max(known)
            at, how = rss[n0][step] * (RSS_AT / n0) ** max(rss_slopes[step], 0.0), f"extrapolated from n={n0}"
        else:
            at, how = None, "not enough sizes"
        largest = max((seconds[n].get(step) or 0.0) for n in sizes)
        short = largest < MIN_SECONDS and len(sizes) > 1
        steps[step] = {"time_slope": slope, "wall_time_slope": wall_slopes.get(step), "time_slope_limit": limit,
                       "time_ok": True if short else (None if slope is None else bool(slope <= limit)),
                       "time_note": f"under {MIN_SECONDS:g} s at every size: not judged" if short else None,
                       "rss_slope": rss_slopes.get(step),
                       f"rss_mb_at_{RSS_AT}": None if at is None else round(at, 1), "rss_at_source": how,
                       "rss_ok": None if at is None else bool(at <= limit_mb)}
    verdicts = [v for s in steps.values() for v in (s["time_ok"], s["rss_ok"])]
    return {"time_basis": basis, "time_slope_limit": MAX_SLOPE, "min_seconds": MIN_SECONDS,
            "nlogn_steps": list(NLOGN_STEPS), "rss_limit_bytes": RSS_LIMIT_BYTES,
            "rss_limit_mb": round(limit_mb, 1), "rss_at": RSS_AT,
            "all_ok": None if None in verdicts or not verdicts else all(verdicts),
            "failing": sorted(s for s, v in steps.items() if v["time_ok"] is False or v["rss_ok"] is False),
            "steps": steps}


# --------------------------------------------------------------------------- machine, plot, JSON

def describe_machine(device: str = "auto") -> dict:
    """lscpu's main fields, memory, GPU (when CUDA is used) and versions; ``slug`` names the JSON file."""
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
    try:
        info["memory_gb"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1)
    except (ValueError, OSError, AttributeError):
        pass
    info["platform"] = platform.platform()
    info["python"] = platform.python_version()
    gpu = None
    if device != "cpu":
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                                 text=True, timeout=30)
            gpu = out.stdout.strip().splitlines()[0].strip() if out.returncode == 0 and out.stdout.strip() else None
        except (OSError, subprocess.SubprocessError, IndexError):
            gpu = None
    info["gpu"] = gpu
    info["slug"] = ("cuda-" + re.sub(r"[^a-z0-9]+", "-", gpu.lower()).strip("-")) if gpu else f"cpu-{os.cpu_count()}core"
    return info


def plot_scaling(report: dict, out: str | Path) -> Path:
    """Log-log PNG: seconds per step against n (with reference slopes 1 and n log n) and peak RSS per step
    against n (with the 8 GB line)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = {int(n): r for n, r in report["results"].items()}
    sizes = sorted(results)
    steps = list(dict.fromkeys(s for n in sizes for s in results[n]["steps"]))
    key = report.get("targets", {}).get("time_basis", "seconds")  # the values the slopes are judged on
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(14, 6.5), sharex=True)
    cmap = plt.get_cmap("tab20")
    styles = ["-", "--", ":", "-."]
    for i, step in enumerate(steps):
        kw = dict(color=cmap(i % 20), linestyle=styles[(i // 20) % 4], marker="o", markersize=3, linewidth=1)
        t = [(n, results[n]["steps"][step][key]) for n in sizes
             if step in results[n]["steps"] and results[n]["steps"][step][key]]
        m = [(n, results[n]["steps"][step]["max_rss_mb"]) for n in sizes
             if step in results[n]["steps"] and results[n]["steps"][step]["max_rss_mb"]]
        if t:
            ax_t.plot(*zip(*t), label=step, **kw)
        if m:
            ax_m.plot(*zip(*m), label=step, **kw)
    total = [(n, sum(s[key] for s in results[n]["steps"].values())) for n in sizes]
    ax_t.plot(*zip(*total), color="black", linewidth=2.5, marker="s", label="sum of steps")
    if sizes:
        n0, t0 = total[0]
        grid = np.geomspace(sizes[0], max(sizes[-1], sizes[0] * 2), 50)
        ax_t.plot(grid, t0 * grid / n0, color="grey", linewidth=1, alpha=0.7, label="slope 1 (from the sum)")
        ax_t.plot(grid, t0 * grid * np.log(grid) / (n0 * math.log(n0)), color="grey", linewidth=1, alpha=0.7,
                  linestyle="--", label="n log n (from the sum)")
    ax_m.axhline(RSS_LIMIT_BYTES / MB, color="red", linewidth=1, linestyle="--")
    ax_m.annotate("8 GB", (0.01, RSS_LIMIT_BYTES / MB), xycoords=("axes fraction", "data"), color="red",
                  va="bottom", fontsize=8)
    what = "CPU seconds" if key == "cpu_seconds" else "seconds"
    for ax, label in ((ax_t, f"{what} (summed over the step's jobs)"), (ax_m, "peak RSS, MB (largest job)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(sizes, [f"{n:,}" for n in sizes])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("images (n)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    machine, settings = report.get("machine", {}), report["settings"]
    where = " + ".join(x for x in (f"{machine.get('Model name', 'CPU')} ({machine.get('cpus')} CPUs, --cores "
                                   f"{settings['cores']})", machine.get("gpu")) if x)
    fig.suptitle(f"leukoreport workflow scaling · {where} · {settings['size']} px, "
                 f"{settings['max_batches']} batches per epoch")
    handles, labels = ax_t.get_legend_handles_labels()
    for handle, label in zip(*ax_m.get_legend_handles_labels()):  # steps with no CPU time to plot
        if label not in labels:
            handles.append(handle)
            labels.append(label)
    fig.legend(handles, labels, loc="center right", fontsize=7, ncol=1, frameon=False)
    fig.tight_layout(rect=(0, 0, 0.86, 0.95))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


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
