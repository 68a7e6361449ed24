"""Training curves of every run on one figure, and the test confusion matrix summed over runs."""

import pandas as pd

from leukoreport.base.step_log import step_log
from leukoreport.report.figures.dataset import plot_confusion
from leukoreport.report.figures.training import plot_seed_curves
from leukoreport.stats.run_tables import read_metrics, summed_confusion

with step_log(snakemake.log[0]):
    histories = {label: pd.read_csv(path) for label, path in zip(snakemake.params.labels, snakemake.input.histories)}
    plot_seed_curves(histories, snakemake.output.curves)
    summed = summed_confusion([read_metrics(path) for path in snakemake.input.metrics], "test")
    plot_confusion(summed, snakemake.output.confusion,
                   title=f"Test confusion matrix summed over {summed['n_seeds']} run(s): "
                         f"{summed['n_correct']}/{summed['n']} correct")
