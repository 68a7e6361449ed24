"""The benchmark runs both variants on the same tiny data and its ratios come from its raw figures."""

from __future__ import annotations

import json

import pytest

from leukoreport.bench.training_speed import BenchSettings, bench_split, best_of, format_report, run_bench
from leukoreport.training.device import resolve_precision


@pytest.mark.slow
def test_bench_on_tiny_data_writes_ratios(tmp_path, make_image_folder):
    data = make_image_folder(tmp_path / "images", per_class=10, size=40)
    out = tmp_path / "bench" / "bench.json"
    report = run_bench(BenchSettings(data_dir=str(data), images=30, epochs=1, size=32, batch_size=8, device="cpu",
                                     threads=1), out)
    saved = json.loads(out.read_text())
    plain, project = saved["plain"], saved["project"]
    assert saved["ratio_phase1"] == pytest.approx(project["phase_seconds"][0] / plain["phase_seconds"][0], abs=1e-4)
    assert saved["ratio_phase2"] == pytest.approx(project["phase_seconds"][1] / plain["phase_seconds"][1], abs=1e-4)
    assert saved["ratio_inference"] == pytest.approx(project["inference_seconds"] / plain["inference_seconds"],
                                                     abs=1e-4)
    # both variants trained and predicted on the same images of the same split
    split = bench_split(BenchSettings(data_dir=str(data), images=30))
    n_train, n_test = int((split["split"] == "train").sum()), int((split["split"] == "test").sum())
    assert plain["n_train"] == project["n_train"] == n_train and plain["n_test"] == project["n_test"] == n_test
    assert project["images_per_second"]["phase1"] == pytest.approx(n_train / project["phase_seconds"][0])
    assert saved["precision"] == resolve_precision("auto", "cpu") and "CPU" in saved["device"]
    for variant in (plain, project):
        hits = variant["test_accuracy"] * n_test
        assert abs(hits - round(hits)) < 1e-9 and 0 <= hits <= n_test
    assert plain["peak_rss_mb"] > 100 and project["peak_rss_mb"] > 100
    for variant in (plain, project):  # inference: the best of the repeated passes
        assert len(variant["inference_runs_seconds"]) == saved["settings"]["inference_repeats"] == 5
        assert variant["inference_seconds"] == min(variant["inference_runs_seconds"])
    assert project["inference_workers"] == 0  # the test images fit in one batch
    step = project["optimizer_step_ms"]
    assert saved["ratio_optimizer_step"] == pytest.approx(step["foreach_adam"] / step["fastai_adam"], abs=1e-4)
    assert step["fastai_adam"] > 0 and step["foreach_adam"] > 0
    assert "ratio" in format_report(report) and "ForeachAdam" in format_report(report)


def test_best_of_keeps_the_first_result_and_the_fastest_time():
    calls = []
    result, best, times = best_of(lambda: calls.append(1) or len(calls), 3)
    assert result == 1 and len(calls) == 3 and best == min(times) and len(times) == 3
    assert best_of(lambda: "x", 0)[0] == "x"
