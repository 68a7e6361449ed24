"""How much the results depend on the seed: per-run table, spread, per-image agreement, ensemble."""

from leukoreport.base.atomic_io import read_json, write_csv, write_json
from leukoreport.base.step_log import step_log
from leukoreport.stats.robustness import robustness_files

with step_log(snakemake.log[0]):
    metrics = [read_json(path) for path in snakemake.input.metrics]
    ensembles = [read_json(path) for path in snakemake.input.ensemble]
    seeds, summary, agreement, disagreement = robustness_files(
        metrics, list(snakemake.input.predictions), ensembles, snakemake.params.confidence)
    write_csv(seeds, snakemake.output.seeds)
    write_csv(agreement, snakemake.output.agreement)
    write_csv(disagreement, snakemake.output.disagreement)
    write_json(summary, snakemake.output.robustness)
    print(seeds.to_string(index=False))
