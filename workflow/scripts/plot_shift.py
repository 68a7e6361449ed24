"""Risk-coverage curves and accuracy by OOD-score band of one run, every dataset in one figure each."""

import pandas as pd

from leukoreport.base.atomic_io import read_json
from leukoreport.base.step_log import step_log
from leukoreport.report.figures.validity import plot_ood_bands, plot_risk_coverage

with step_log(snakemake.log[0]):
    names = snakemake.params.datasets
    curves = {n: pd.read_csv(p) for n, p in zip(names, snakemake.input.curve)}
    bands = {n: pd.DataFrame(read_json(p)["ood"]["bands"]) for n, p in zip(names, snakemake.input.summary)}
    label = snakemake.params.label
    plot_risk_coverage(curves, snakemake.output.risk_coverage, f"Risk–coverage, {label}")
    plot_ood_bands(bands, snakemake.output.bands, f"Accuracy by OOD-score band, {label}")
