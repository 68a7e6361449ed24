"""Render the HTML report from the files the workflow wrote (with variants: the Variants section and every variant)."""

import json
from pathlib import Path

from leukoreport.base.step_log import step_log
from leukoreport.report.build import build_context, collect_run_info, render_html, write_html
from leukoreport.report.sections.variants import variants_report_context

with step_log(snakemake.log[0]):
    results = Path(snakemake.output[0]).parents[1]
    p = snakemake.params
    if p.variants:
        files = {Path(f).name: Path(f) for f in snakemake.input.variants}
        result = json.loads(files["variants.json"].read_text())
        context = variants_report_context(results, p.config, p.variants, p.reference, p.splits, p.seeds, p.datasets,
                                          collect_run_info("."), result, files["variants"])
    else:
        context = build_context(results, p.config, p.splits, p.seeds, p.datasets, collect_run_info("."))
    write_html(render_html(context, Path(snakemake.input.templates[0]).parent), snakemake.output[0])
