"""One table of every seed and dataset, and each external set's gap to the test accuracy."""

from leukoreport.files import write_csv
from leukoreport.logs import step_log
from leukoreport.summary import external_gaps, metrics_table, read_metrics

with step_log(snakemake.log[0]):
    table = metrics_table([read_metrics(path) for path in snakemake.input])
    write_csv(table, snakemake.output.metrics)
    write_csv(external_gaps(table), snakemake.output.external)
    print(table.to_string(index=False))
