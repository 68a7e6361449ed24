"""Render the HTML report or the two-page summary (`params.document`) from the files the workflow wrote; the Claims
section first when the claims files are inputs; with variants, the Variants section (or table) and every variant."""

import json
from pathlib import Path

from leukoreport.base.step_log import step_log
from leukoreport.report.build import build_context, summary_context
from leukoreport.report.render import render_html, write_html
from leukoreport.report.run_facts import collect_run_info
from leukoreport.report.sections.variants import variants_report_context, variants_summary_context

with step_log(snakemake.log[0]):
    results = Path(snakemake.output[0]).parents[1]
    p = snakemake.params
    run_info = collect_run_info(".")
    claims = [Path(f) for f in snakemake.input.claims]  # claims.json, claims.csv, deviations.csv, checklist.csv
    claims_dir = claims[0].parent if claims else None
    if p.variants:
        files = {Path(f).name: Path(f) for f in snakemake.input.variants}
        result = json.loads(files["variants.json"].read_text())
        if p.document == "report":
            context = variants_report_context(results, p.config, p.variants, p.reference, p.splits, p.seeds,
                                              p.datasets, run_info, result, files["variants"], claims_dir)
        else:
            context = variants_summary_context(results, p.config, p.variants, p.reference, p.splits, p.seeds,
                                               p.datasets, run_info, result, claims_dir)
    else:
        make_context = build_context if p.document == "report" else summary_context
        context = make_context(results, p.config, p.splits, p.seeds, p.datasets, run_info, claims_dir=claims_dir)
    write_html(render_html(context, Path(snakemake.input.templates[0]).parent, p.document), snakemake.output[0])
