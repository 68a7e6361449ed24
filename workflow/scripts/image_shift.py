"""How far one dataset's image statistics are from the training images': table and distribution plots."""

import pandas as pd

from leukoreport.base.atomic_io import write_csv
from leukoreport.base.step_log import step_log
from leukoreport.data.image_stats import shift_table
from leukoreport.report.figures.image_shift import plot_distributions

with step_log(snakemake.log[0]):
    train, data = pd.read_csv(snakemake.input.train), pd.read_csv(snakemake.input.data)
    table = shift_table(train, data)
    write_csv(table, snakemake.output.table)
    plot_distributions(train, data, snakemake.wildcards.dataset, snakemake.output.figure)
    print(table.head(3).to_string(index=False))
