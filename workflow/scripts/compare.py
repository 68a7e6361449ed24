"""Compare this run (A) with the run named by config compare_with (B) on every dataset both evaluated."""

from pathlib import Path

from leukoreport.base.errors import LeukoError
from leukoreport.base.step_log import step_log
from leukoreport.compare import compare_runs, write_comparison

with step_log(snakemake.log[0]):
    if not snakemake.params.other:
        raise LeukoError("config key compare_with: not set; give the other run's folder, "
                         "e.g. --config compare_with=../baseline")
    results = Path(snakemake.input[0]).parents[1]
    result = compare_runs(results, snakemake.params.other, snakemake.params.resamples, snakemake.params.seed,
                          snakemake.params.confidence, n_bins=snakemake.params.bins)
    write_comparison(result, Path(snakemake.output.json).parent, Path(snakemake.input.templates[0]).parent)
    for part in result["datasets"].values():
        print(part["verdict"])
