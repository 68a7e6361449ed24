"""Loss curves of both phases for one seed."""

import pandas as pd

from leukoreport.base.atomic_io import read_json
from leukoreport.base.step_log import step_log
from leukoreport.report.figures.training import plot_loss_curves

with step_log(snakemake.log[0]):
    history = pd.read_csv(snakemake.input.history)
    info = read_json(snakemake.input.info)
    plot_loss_curves(history, info, snakemake.output[0])
