"""How much the results depend on the seed: per-run table, spread, per-image agreement, ensemble."""

import json

import pandas as pd

from leukoreport.base.atomic_io import write_csv, write_json
from leukoreport.base.step_log import step_log
from leukoreport.stats.robustness import robustness_files

with step_log(snakemake.log[0]):
    metrics = [json.loads(open(path).read()) for path in snakemake.input.metrics]
    ensembles = [json.loads(open(path).read()) for path in snakemake.input.ensemble]
    seeds, summary, agreement, disagreement = robustness_files(
        metrics, list(snakemake.input.predictions), ensembles, snakemake.params.confidence)
    write_csv(seeds, snakemake.output.seeds)
    write_csv(agreement, snakemake.output.agreement)
    write_csv(disagreement, snakemake.output.disagreement)
    write_json(summary, snakemake.output.robustness)
    print(seeds.to_string(index=False))
