"""Interval plot per metric (variants down, a panel per dataset) and the probability of improvement."""

import json
from pathlib import Path

from leukoreport.base.step_log import step_log
from leukoreport.report.figures.variants import plot_improvement, plot_variant_intervals

with step_log(snakemake.log[0]):
    out = Path(snakemake.output[0])
    out.mkdir(parents=True, exist_ok=True)
    result = json.loads(Path(snakemake.input[0]).read_text())
    for metric in result["metrics"]:
        plot_variant_intervals(result, metric, out / f"intervals_{metric}.png")
    plot_improvement(result, out / "improvement.png")
