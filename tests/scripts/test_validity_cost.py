"""scripts/validity_cost.py: seconds per rule from benchmark files, diagnostics against evaluation and report."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "validity_cost.py"


def load_script():
    spec = importlib.util.spec_from_file_location("validity_cost", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_benchmarks(results: Path, seconds: dict[str, float]) -> Path:
    """Snakemake-style benchmark files (a header and one row; ``s`` is the wall time) named by their stem."""
    bench = results / "benchmarks"
    bench.mkdir(parents=True)
    for stem, s in seconds.items():
        (bench / f"{stem}.tsv").write_text(f"s\th:m:s\tmax_rss\tcpu_time\n{s}\t0:00:01\t100\t{s / 2}\n")
    return results


FILES = {"evaluate_split42_seed1_test": 10.0, "evaluate_split42_seed1_lab2": 6.0, "render_html": 3.0,
         "report_pdf": 2.0, "summary_pdf": 1.0, "plot_dataset_split42_seed1_test": 4.0,
         "image_stats_split42": 2.5, "image_stats_split42_lab2": 1.5, "shift_split42_seed1_test": 1.0,
         "plot_shift_split42_seed1": 0.5, "gradcam_split42_seed1_test": 3.0, "embed_train_split42_seed1": 1.5,
         "validity_summary": 0.5, "leakage_external_lab2": 9.0, "train_split42_seed1": 99.0, "claims": 7.0}


def test_rule_of_names_each_counted_rule_and_nothing_else():
    cost = load_script()
    assert cost.rule_of("image_stats_split42") == "image_stats"
    assert cost.rule_of("image_stats_split42_lab2") == "image_stats"
    assert cost.rule_of("plot_shift_split42_seed1") == "plot_shift"
    assert cost.rule_of("shift_split42_seed1_test") == "shift"
    assert cost.rule_of("render_html") == "render_html" and cost.rule_of("summary_html") == "summary_html"
    for other in ("leakage_external_lab2", "leakage_split42", "train_split42_seed1", "claims", "checklist"):
        assert cost.rule_of(other) == "", other


def test_seconds_jobs_and_ratio(tmp_path):
    cost = load_script()
    seconds, jobs = cost.rule_seconds(write_benchmarks(tmp_path / "results", FILES))
    assert seconds["evaluate"] == 16.0 and jobs["evaluate"] == 2 and jobs["image_stats"] == 2
    assert "leakage_external" not in seconds and "train" not in seconds
    diag, base, ratio = cost.cost_ratio(seconds)
    assert diag == pytest.approx(2.5 + 1.5 + 1.0 + 0.5 + 3.0 + 1.5 + 0.5)
    assert base == pytest.approx(10 + 6 + 3 + 2 + 1 + 4)
    assert ratio == pytest.approx(diag / base)
    cpu, _ = cost.rule_seconds(tmp_path / "results", "cpu_time")
    assert cpu["evaluate"] == 8.0 and cost.cost_ratio(cpu)[2] == pytest.approx(ratio)


def test_two_folders_print_both_ratios_and_their_quotient(tmp_path):
    before = write_benchmarks(tmp_path / "before", FILES)
    after = write_benchmarks(tmp_path / "after", {**FILES, "gradcam_split42_seed1_test": 1.0})
    proc = subprocess.run([sys.executable, str(SCRIPT), str(before), str(after)], capture_output=True, text=True,
                          check=True)
    lines = proc.stdout.splitlines()
    ratios = [float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith("  evaluation and report: ")]
    cpu_ratios = [float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith("  CPU: ")]
    assert cpu_ratios == ratios  # every cpu_time here is half the wall time
    assert ratios == [round(10.5 / 26, 3), round(8.5 / 26, 3)]
    assert lines[-1] == f"ratio after / before: {(8.5 / 26) / (10.5 / 26):.3f}"
    assert "  gradcam                 1.0 s       0.5 s    1 jobs" in lines


def write_timing(path: Path, rule: str, diagnostics: dict[str, tuple[float, float]]) -> None:
    """A timing.json as an evaluate or ensemble job writes it: (wall, CPU) seconds per in-job diagnostic."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"rule": rule, "diagnostics": {k: {"s": s, "cpu_time": c}
                                                              for k, (s, c) in diagnostics.items()}}))


def test_seconds_timed_inside_jobs_move_to_the_diagnostics(tmp_path):
    cost = load_script()
    files = {k: v for k, v in FILES.items() if not k.startswith(("gradcam", "embed_train"))}
    files["ensemble_split42_test"] = 2.0
    results = write_benchmarks(tmp_path / "results", files)
    run = results / "splits/42/seeds/1"
    write_timing(run / "test/timing.json", "evaluate", {"gradcam": (3.0, 2.0), "embed_train": (1.5, 1.0)})
    write_timing(run / "lab2/timing.json", "evaluate", {"gradcam": (2.0, 1.0)})
    write_timing(results / "splits/42/ensemble/test/timing.json", "ensemble", {"label_audit": (0.5, 0.25)})
    write_timing(results / "logs/timing.json", "evaluate", {"gradcam": (99.0, 99.0)})  # logs are not results
    seconds, _ = cost.rule_seconds(results)
    moved = cost.moved_seconds(results)
    assert moved == {("evaluate", "gradcam"): 5.0, ("evaluate", "embed_train"): 1.5, ("ensemble", "label_audit"): 0.5}
    assert cost.moved_seconds(results, "cpu_time")[("evaluate", "gradcam")] == 3.0
    charged = cost.charge_diagnostics(seconds, moved)
    assert charged["evaluate"] == pytest.approx(16.0 - 6.5) and charged["ensemble"] == pytest.approx(1.5)
    assert charged["gradcam"] == 5.0 and charged["embed_train"] == 1.5 and charged["label_audit"] == 0.5
    diag, base, ratio = cost.cost_ratio(charged)
    assert diag == pytest.approx(2.5 + 1.5 + 1.0 + 0.5 + 0.5 + 5.0 + 1.5 + 0.5)
    assert base == pytest.approx(16.0 + 3 + 2 + 1 + 4 + 2.0 - 7.0)
    # the total is the same: work is moved, never hidden
    assert sum(charged.values()) == pytest.approx(sum(seconds.values()))
    proc = subprocess.run([sys.executable, str(SCRIPT), str(results)], capture_output=True, text=True, check=True)
    assert "  moved from evaluate to gradcam (timed inside the jobs, 3 timing.json): 5.0 s, CPU 3.0 s" in proc.stdout
    assert f"  before moving: evaluation and report {base + 7.0:.1f} s" in proc.stdout
    assert proc.stdout.splitlines()[-1] == f"  evaluation and report: {base:.1f} s; diagnostics: {diag:.1f} s; " \
                                           f"ratio {ratio:.3f}"


def test_interventions_timed_in_evaluate_are_counted_in_neither_sum(tmp_path):
    cost = load_script()
    results = write_benchmarks(tmp_path / "results", FILES)
    write_timing(results / "splits/42/seeds/1/lab2/timing.json", "evaluate", {"interventions": (4.0, 3.0)})
    seconds, _ = cost.rule_seconds(results)
    charged = cost.charge_diagnostics(seconds, cost.moved_seconds(results))
    assert charged["evaluate"] == pytest.approx(16.0 - 4.0) and charged["interventions"] == 4.0
    assert cost.cost_ratio(charged)[0] == pytest.approx(cost.cost_ratio(seconds)[0])  # diagnostics unchanged
    assert cost.cost_ratio(charged)[1] == pytest.approx(cost.cost_ratio(seconds)[1] - 4.0)


def test_a_timing_pair_outside_the_counted_rules_is_refused(tmp_path):
    cost = load_script()
    with pytest.raises(ValueError, match="'gradcam' in rule 'train'"):
        cost.charge_diagnostics({"train": 5.0}, {("train", "gradcam"): 1.0})
