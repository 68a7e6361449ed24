"""The scaling benchmark: synthetic images, benchmark collection, growth slopes, targets, and `max_batches`."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from leukoreport.bench.scaling import ScaleSettings, collect_benchmarks, parse_sizes, rules_of_benchmarks, scale_config
from leukoreport.bench.scaling_targets import growth_exponents, nlogn_slope, targets
from leukoreport.bench.synthetic import make_synthetic_folder
from leukoreport.config.checks import check_config
from leukoreport.data.leakage import find_pairs, hash_images
from leukoreport.training.two_phase import TrainConfig, train

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """3 embedded images of each of 2 classes."""
    root = tmp_path_factory.mktemp("source") / "images"
    for label in ("basophil", "monocyte"):
        (root / label).mkdir(parents=True)
        for f in sorted((ROOT / "data" / "leukocytes" / label).iterdir())[:3]:
            shutil.copy2(f, root / label / f.name)
    return root


def _hashes(paths: list[Path]) -> pd.DataFrame:
    return hash_images([p.resolve().as_posix() for p in paths], "/").assign(label="x", group="train")


def test_synthetic_images_are_no_near_duplicates(source, tmp_path):
    out = tmp_path / "synthetic"
    made = make_synthetic_folder(source, out, 30, seed=3)
    files = sorted(out.rglob("*.jpg"))
    assert len(files) == made["images"] == 30 and made["max_variants_per_source"] == 5
    assert {f.parent.name: sum(g.parent == f.parent for g in files) for f in files} == {"basophil": 15,
                                                                                        "monocyte": 15}
    sources = sorted(source.rglob("*.jpg"))
    # the leakage audit's hashes: no pair within the default leakage_max_distance, generated or source
    table = _hashes(files + sources)
    assert find_pairs(table, 4).empty
    words = np.array([int(h, 16) for h in table["phash"]], dtype=np.uint64)
    dist = np.bitwise_count(words[:, None] ^ words[None, :])
    assert dist[~np.eye(len(words), dtype=bool)].min() > 4
    # and the pixels differ from the source (same size, not the same image)
    with Image.open(files[0]) as a, Image.open(source / "basophil" / f"{files[0].stem.rsplit('_v', 1)[0]}.jpg") as b:
        assert a.size == b.size
        assert np.abs(np.asarray(a, dtype=int) - np.asarray(b, dtype=int)).mean() > 5
    assert made["check"]["ok"] and made["check"]["pairs_within_max_distance"] == 0
    assert made["check"]["min_distance"] > 4 and made["check"]["images"] == 36


def test_synthetic_images_are_seeded(source, tmp_path):
    first = make_synthetic_folder(source, tmp_path / "a", 12, seed=5)
    again = make_synthetic_folder(source, tmp_path / "b", 12, seed=5)
    other = make_synthetic_folder(source, tmp_path / "c", 12, seed=6)
    names = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.jpg"))
    assert len(names) == 12 and first["images"] == again["images"] == other["images"] == 12
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert any((tmp_path / "a" / n).read_bytes() != (tmp_path / "c" / n).read_bytes() for n in names)
    # made again with the same arguments: reused, not rewritten
    assert make_synthetic_folder(source, tmp_path / "a", 12, seed=5)["reused"]


TSV_HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
LOG = """
[Wed Dec  2 16:30:33 2026]
localrule split:
    input: data
    output: results/splits/42/split.csv
    log: results/logs/split42.log
    jobid: 3
    benchmark: results/benchmarks/split42.tsv
    wildcards: split=42
[Wed Dec  2 16:30:34 2026]
rule report_pdf:
    input: results/report/report.html
    output: results/report/report.pdf
    jobid: 7
    benchmark: results/benchmarks/report_pdf.tsv
    wildcards: doc=report
rule report_pdf:
    input: results/report/summary.html
    jobid: 8
    benchmark: results/benchmarks/summary_pdf.tsv
    wildcards: doc=summary
"""


def test_collect_benchmarks_equals_the_tsv_files(tmp_path):
    bench = tmp_path / "benchmarks"
    bench.mkdir()
    rows = {"split42.tsv": "12.3456\t0:00:12\t250.12\t900\t200\t210\t1.2\t0.3\t80.5\t10.1\n",
            "report_pdf.tsv": "20.5\t0:00:20\t700.25\t1500\t650\t660\t5\t1\t95\t19.4\n",
            "summary_pdf.tsv": "4.25\t0:00:04\tNA\tNA\tNA\tNA\tNA\tNA\tNA\tNA\n",
            "train_split42_seed1.tsv": "100.0\t0:01:40\t3000.5\t9000\t2900\t2950\t50\t20\t190\t190\n"}
    for name, row in rows.items():
        (bench / name).write_text(TSV_HEADER + row)
    assert rules_of_benchmarks(LOG) == {"split42.tsv": "split", "report_pdf.tsv": "report_pdf",
                                        "summary_pdf.tsv": "report_pdf"}
    steps = collect_benchmarks(bench, LOG)
    assert list(steps) == ["split", "report_pdf", "train"]  # the log's order; train named from its file
    for name in rows:
        table = pd.read_csv(bench / name, sep="\t")
        step = next(s for s in steps.values() if name in s["files"])
        assert step["files"][name]["seconds"] == table["s"].iloc[0]
        rss = pd.to_numeric(table["max_rss"], errors="coerce").iloc[0]
        assert step["files"][name]["max_rss_mb"] == (None if math.isnan(rss) else rss)
    assert steps["report_pdf"] == {"seconds": 24.75, "cpu_seconds": 19.4, "max_rss_mb": 700.25, "jobs": 2,
                                   "files": {"report_pdf.tsv": {"seconds": 20.5, "cpu_seconds": 19.4,
                                                                "max_rss_mb": 700.25},
                                             "summary_pdf.tsv": {"seconds": 4.25, "cpu_seconds": None,
                                                                 "max_rss_mb": None}}}
    assert steps["split"]["seconds"] == 12.3456 and steps["train"]["jobs"] == 1


def test_growth_exponents_recover_the_power():
    sizes = [2500, 10000, 50000, 100000]
    table = {n: {"linear": 3.0 * n, "square": 1e-4 * n**2, "flat": 7.0, "root": 2 * n**0.5, "none": None}
             for n in sizes}
    slopes = growth_exponents(table)
    assert slopes["linear"] == pytest.approx(1.0, abs=1e-3) and slopes["square"] == pytest.approx(2.0, abs=1e-3)
    assert slopes["flat"] == pytest.approx(0.0, abs=1e-3) and slopes["root"] == pytest.approx(0.5, abs=1e-3)
    assert slopes["none"] is None
    assert growth_exponents({2500: {"a": 1.0}}) == {"a": None}
    assert 1.0 < nlogn_slope(sizes) < 1.15


def test_targets_judge_slopes_and_rss():
    def result(n, leak, train_rss):
        return {"steps": {"leakage": {"seconds": leak, "max_rss_mb": 100.0},
                          "train": {"seconds": 0.01 * n, "max_rss_mb": train_rss},
                          "report_html": {"seconds": 1e-6 * n**1.5, "max_rss_mb": 300.0}}}

    sizes = [2500, 10000, 50000]
    verdict = targets({n: result(n, 1e-3 * n * math.log(n), 1000 + 0.2 * n) for n in sizes})
    steps = verdict["steps"]
    assert steps["leakage"]["time_ok"] and steps["train"]["time_ok"] and not steps["report_html"]["time_ok"]
    assert steps["train"]["rss_mb_at_50000"] == 11000.0 and steps["train"]["rss_at_source"] == "measured"
    assert steps["train"]["rss_ok"] is False and steps["leakage"]["rss_ok"] is True
    assert verdict["all_ok"] is False and verdict["failing"] == ["report_html", "train"]
    # without 50,000: extrapolated with the RSS slope; with one size nothing is decided
    partial = targets({n: result(n, 1.0, 500.0) for n in (2500, 10000)})["steps"]["train"]
    assert partial["rss_at_source"] == "extrapolated from n=10000" and partial["rss_ok"]
    assert targets({2500: result(2500, 1.0, 500.0)})["all_ok"] is None
    assert targets({n: result(n, 1.0, 500.0) for n in sizes})["steps"]["leakage"]["time_note"].startswith("under 5 s")


def test_targets_judge_cpu_seconds_when_every_benchmark_has_them():
    """Wall time inflated by overlapping jobs at the largest size does not fail a step whose CPU work is linear."""
    def result(n):
        return {"steps": {"image_stats": {"seconds": 1e-6 * n**1.6, "cpu_seconds": 0.01 * n, "max_rss_mb": 200.0}}}

    verdict = targets({n: result(n) for n in (2500, 10000, 50000)})
    assert verdict["time_basis"] == "cpu_seconds"
    assert verdict["steps"]["image_stats"]["time_slope"] == pytest.approx(1.0, abs=1e-3)
    assert verdict["steps"]["image_stats"]["time_ok"] is True
    assert verdict["steps"]["image_stats"]["wall_time_slope"] == pytest.approx(1.6, abs=1e-3)  # shown beside
    wall_only = {n: {"steps": {"image_stats": {"seconds": 1e-5 * n**1.6, "max_rss_mb": 200.0}}} for n in (2500, 10000)}
    assert targets(wall_only)["time_basis"] == "seconds" and targets(wall_only)["all_ok"] is False


def test_scale_config_is_a_valid_workflow_config(tmp_path, make_image_folder):
    import yaml

    base = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    images = make_image_folder(tmp_path / "images", per_class=2)
    cfg = scale_config(base, images, ScaleSettings(size=64, batch_size=8, epochs=1, max_batches=3, cores="2"))
    check_config(cfg, SCHEMA, base_dir=ROOT)
    assert cfg["seeds"] == [1] and cfg["split_seeds"] == [42] and cfg["pretrained"] is False
    assert cfg["max_batches"] == 3 and cfg["train_threads"] == 2 and cfg["size"] == 64
    assert cfg["phases"]["frozen"]["max_epochs"] == cfg["phases"]["unfrozen"]["max_epochs"] == 1
    assert cfg["external"] == {"external_monocyte": "data/external_monocyte"} and cfg["leakage_max_distance"] == 4
    assert parse_sizes("50000,2500,10_000") == [2500, 10000, 50000]


# --------------------------------------------------------------------------- max_batches

TRAIN_PARAMS = {"size": 32, "batch_size": 4, "pretrained": False, "schedule": "one_cycle",
                "phases": {"frozen": {"lr": 1e-2, "max_epochs": 2, "patience": 3},
                           "unfrozen": {"lr": 1e-3, "max_epochs": 1, "patience": 3}},
                "augmentation": {}, "num_workers": 0, "device": "cpu", "precision": "fp32", "channels_last": True,
                "deterministic": True, "stain_augmentation": {"method": "none", "strength": 0.05}}


@pytest.fixture(scope="module")
def small_split(tmp_path_factory, make_image_folder):
    from leukoreport.data.images import discover
    from leukoreport.data.split import stratified_split

    root = make_image_folder(tmp_path_factory.mktemp("batches") / "images", per_class=20, size=36)
    return stratified_split(discover(root), (0.6, 0.2, 0.2), seed=42)  # 36 train (9 batches), 12 valid (3)


def _counted(monkeypatch):
    """Count the batches of every training and validation pass (a callback beside the project's own)."""
    from fastai.callback.core import Callback

    import leukoreport.training.two_phase as train_module

    passes: list[list] = []

    class Count(Callback):
        def before_train(self):
            passes.append(["train", 0])

        def before_validate(self):
            passes.append(["valid", 0])

        def after_batch(self):
            passes[-1][1] += 1

    original = train_module._speed_callbacks
    monkeypatch.setattr(train_module, "_speed_callbacks", lambda *a, **k: [*original(*a, **k), Count()])
    return passes


def test_max_batches_limits_every_pass(small_split, monkeypatch):
    passes = _counted(monkeypatch)
    learn, history, info = train(small_split, TrainConfig.from_config({**TRAIN_PARAMS, "max_batches": 2}), 3, 1)
    assert passes == [["train", 2], ["valid", 2]] * 3  # 2 + 1 epochs, instead of 9 and 3 batches
    assert len(history) == 3 and history[["train_loss", "valid_loss", "accuracy"]].notna().all().all()
    assert info["max_batches"] == 2
    # the one-cycle schedule spans the short epoch: the 2nd of 2 batches is half way (cosine from the peak at 25%)
    lrs = learn.recorder.lrs
    assert len(lrs) == 2 and lrs[-1] == pytest.approx(1e-3 * (1e-5 + (1 - 1e-5) * 0.75), rel=1e-3)

    passes.clear()
    train(small_split, TrainConfig.from_config(TRAIN_PARAMS), 3, 1)
    assert passes == [["train", 9], ["valid", 3]] * 3


def test_max_batches_null_changes_nothing(small_split):
    cols = ["train_loss", "valid_loss", "accuracy", "train_accuracy"]
    _, without, info_without = train(small_split, TrainConfig.from_config(TRAIN_PARAMS), 4, 1)
    _, null, info_null = train(small_split, TrainConfig.from_config({**TRAIN_PARAMS, "max_batches": None}), 4, 1)
    assert without[cols].equals(null[cols])
    assert "max_batches" not in info_without and "max_batches" not in info_null


# --------------------------------------------------------------------------- end to end

@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("LEUKOREPORT_SCALE_E2E"),
                    reason="runs the whole workflow twice (minutes); set LEUKOREPORT_SCALE_E2E=1 to run it")
def test_scale_benchmark_end_to_end(tmp_path, monkeypatch):
    """`leukoreport bench --scale 30,60` runs the real workflow twice; the JSON holds the TSV files' numbers."""
    from leukoreport.cli import main

    monkeypatch.chdir(ROOT)
    out = tmp_path / "scale.json"
    code = main(["bench", "--scale", "30,60", "--size", "64", "--batch-size", "8", "--cores", "2",
                 "--scratch", str(tmp_path / "scratch"), "--out", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    assert report["sizes"] == [30, 60] and out.with_suffix(".png").stat().st_size > 10_000
    assert not (tmp_path / "scratch" / "n30").exists()  # removed without --keep
    for n in (30, 60):
        result = report["results"][str(n)]
        steps = result["steps"]
        for rule in ("split", "external", "leakage", "cache", "weights", "train", "evaluate", "evaluate_test",
                     "plot_training", "plot_dataset", "image_stats", "ensemble", "plot_shift",
                     "report_html", "summary_html", "report_pdf"):
            assert rule in steps, rule
        assert steps["evaluate"]["jobs"] == steps["evaluate_test"]["jobs"] == 1  # monocytes, test
        assert steps["report_pdf"]["jobs"] == 2  # 2 PDFs
        assert sum(result["split"].values()) == n
        tsvs = sorted((tmp_path / "scale" / f"n{n}" / "benchmarks").glob("*.tsv"))
        assert sum(s["jobs"] for s in steps.values()) == len(tsvs)
        for tsv in tsvs:
            table = pd.read_csv(tsv, sep="\t")
            step = next(s for s in steps.values() if tsv.name in s["files"])
            assert step["files"][tsv.name]["seconds"] == pytest.approx(float(table["s"].iloc[0]))
            rss = pd.to_numeric(table["max_rss"], errors="coerce").iloc[0]
            assert step["files"][tsv.name]["max_rss_mb"] == (None if math.isnan(rss) else pytest.approx(rss))
        for step in steps.values():
            assert step["seconds"] == pytest.approx(sum(f["seconds"] for f in step["files"].values()), abs=1e-3)
        assert "max_batches: 10" in (tmp_path / "scale" / f"n{n}" / "scale.yaml").read_text()
    assert set(report["targets"]["steps"]) >= {"train", "leakage"}
    assert all(v["time_slope"] is not None for v in report["targets"]["steps"].values())
