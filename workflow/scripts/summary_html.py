"""Render the two-page summary from the files the workflow wrote."""

from pathlib import Path

from leukoreport.logs import step_log
from leukoreport.report import collect_run_info, render_html, summary_context, write_html

with step_log(snakemake.log[0]):
    results = Path(snakemake.output[0]).parents[1]
    context = summary_context(
        results, snakemake.params.config, snakemake.params.splits, snakemake.params.seeds, snakemake.params.datasets,
        collect_run_info("."),
    )
    write_html(render_html(context, Path(snakemake.input.templates[0]).parent, "summary"), snakemake.output[0])
