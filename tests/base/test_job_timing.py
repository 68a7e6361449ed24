"""timing.json: the seconds a job spends on diagnostics besides its own step, written and read back."""

from __future__ import annotations

import json
import time

import pytest

from leukoreport.base.errors import LeukoError
from leukoreport.base.job_timing import JobTiming, read_timing


def test_measure_adds_wall_and_cpu_seconds_per_diagnostic(tmp_path):
    timing = JobTiming("evaluate")
    with timing.measure("gradcam"):
        time.sleep(0.05)
    with timing.measure("gradcam"):
        sum(i * i for i in range(200_000))  # CPU work
    with pytest.raises(ZeroDivisionError), timing.measure("embed_train"):
        1 / 0  # noqa: B018 - an error still counts the seconds spent
    assert set(timing.diagnostics) == {"gradcam", "embed_train"}
    assert timing.diagnostics["gradcam"]["s"] >= 0.05 and timing.diagnostics["gradcam"]["cpu_time"] > 0
    timing.write(tmp_path / "timing.json")
    data = json.loads((tmp_path / "timing.json").read_text())
    assert data == {"rule": "evaluate", "diagnostics": {k: timing.diagnostics[k] for k in ("embed_train", "gradcam")}}
    assert read_timing(tmp_path / "timing.json") == timing


@pytest.mark.parametrize(("content", "key"), [
    ({"diagnostics": {}}, "'rule'"),
    ({"rule": "evaluate"}, "'diagnostics'"),
    ({"rule": "evaluate", "diagnostics": {"gradcam": {"s": 1.0}}}, "'diagnostics.gradcam'"),
    ({"rule": "evaluate", "diagnostics": {"gradcam": {"s": "x", "cpu_time": 1}}}, "'diagnostics.gradcam'"),
])
def test_malformed_timing_is_one_line_naming_file_and_key(tmp_path, content, key):
    path = tmp_path / "timing.json"
    path.write_text(json.dumps(content))
    with pytest.raises(LeukoError) as err:
        read_timing(path)
    assert str(path) in str(err.value) and key in str(err.value) and "\n" not in str(err.value)
