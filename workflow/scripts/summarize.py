"""One table of every seed and dataset, and each external set's gap to the test accuracy."""

from pathlib import Path

from leukoreport.base.atomic_io import write_csv
from leukoreport.base.step_log import step_log
from leukoreport.stats.run_tables import external_gaps, metrics_table, read_metrics

with step_log(snakemake.log[0]):
    results = Path(snakemake.output.metrics).parents[1]
    predictions = [(Path(path).parent / "predictions.csv").relative_to(results).as_posix() for path in snakemake.input]
    table = metrics_table([read_metrics(path) for path in snakemake.input], predictions)
    write_csv(table, snakemake.output.metrics)
    write_csv(external_gaps(table), snakemake.output.external)
    print(table.to_string(index=False))
