"""Loss curves of both phases for one seed."""

import json

import pandas as pd

from leukoreport.report.figures.common import plot_loss_curves
from leukoreport.base.step_log import step_log

with step_log(snakemake.log[0]):
    history = pd.read_csv(snakemake.input.history)
    info = json.loads(open(snakemake.input.info).read())
    plot_loss_curves(history, info, snakemake.output[0])
