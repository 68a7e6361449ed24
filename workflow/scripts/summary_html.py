"""Render the two-page summary from the files the workflow wrote (with variants: their table first)."""

import json
from pathlib import Path

from leukoreport.base.step_log import step_log
from leukoreport.report.build import collect_run_info, render_html, summary_context, write_html
from leukoreport.report.sections.variants import variants_summary_context

with step_log(snakemake.log[0]):
    results = Path(snakemake.output[0]).parents[1]
    p = snakemake.params
    if p.variants:
        files = {Path(f).name: Path(f) for f in snakemake.input.variants}
        result = json.loads(files["variants.json"].read_text())
        context = variants_summary_context(results, p.config, p.variants, p.reference, p.splits, p.seeds, p.datasets,
                                           collect_run_info("."), result)
    else:
        context = summary_context(results, p.config, p.splits, p.seeds, p.datasets, collect_run_info("."))
    write_html(render_html(context, Path(snakemake.input.templates[0]).parent, "summary"), snakemake.output[0])
