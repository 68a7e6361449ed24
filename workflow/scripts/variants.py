"""Compare every recipe variant with the reference on every dataset: intervals, paired tests, Holm verdicts."""

from pathlib import Path

from leukoreport.base.atomic_io import write_csv, write_json
from leukoreport.base.step_log import step_log
from leukoreport.stats.run_files import load_run
from leukoreport.stats.verdicts import compare_variants, variant_tables

with step_log(snakemake.log[0]):
    runs = {name: load_run(Path(path).parents[1]) for name, path in zip(snakemake.params.variants,
                                                                       snakemake.input.metrics)}
    result = compare_variants(runs, snakemake.params.reference, snakemake.params.datasets,
                              n_resamples=snakemake.params.resamples, seed=snakemake.params.seed,
                              confidence=snakemake.params.confidence, n_bins=snakemake.params.bins)
    summary, comparisons = variant_tables(result)
    write_json(result, snakemake.output.json)
    write_csv(summary, snakemake.output.summary)
    write_csv(comparisons, snakemake.output.comparisons)
    print(comparisons.to_string(index=False))
