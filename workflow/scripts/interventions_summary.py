"""Interventions at evaluation over every run of every external set: accuracy, change against plain evaluation
(paired bootstrap, seeds matched), Holm-adjusted verdicts and a "why" sentence per set."""

from leukoreport.base.atomic_io import write_csv, write_json
from leukoreport.base.step_log import step_log
from leukoreport.stats.interventions import Settings, interventions_summary, read_run

with step_log(snakemake.log[0]):
    p = snakemake.params.uncertainty
    settings = Settings(confidence=p["confidence_level"], n_resamples=p["bootstrap_resamples"],
                        seed=p["bootstrap_seed"])
    runs = [read_run(c, j) for c, j in zip(snakemake.input.csv, snakemake.input.json)]
    table, summary = interventions_summary(runs, settings)
    write_csv(table, snakemake.output.table)
    write_json(summary, snakemake.output.summary)
    for sentence in summary["sentences"].values():
        print(sentence)
