"""Tables over every run and dataset: baselines, domain AUC, OOD scores; image shifts; label audits."""

import pandas as pd

from leukoreport.base.atomic_io import read_json, write_csv
from leukoreport.base.step_log import step_log
from leukoreport.stats.validity import image_shift_summary, label_audit_summary, validity_table

with step_log(snakemake.log[0]):
    metrics = [read_json(p) for p in snakemake.input.metrics]
    shifts = [read_json(p) for p in snakemake.input.shift] or [None] * len(metrics)
    write_csv(validity_table(metrics, shifts), snakemake.output.validity)
    keys = [(s, d) for s in snakemake.params.splits for d in snakemake.params.datasets]
    csvs = [p for p in snakemake.input.image_shift if p.endswith(".csv")]
    write_csv(image_shift_summary({k: pd.read_csv(p) for k, p in zip(keys, csvs)}), snakemake.output.image_shift)
    audits = [read_json(p) for p in snakemake.input.label_audit if p.endswith(".json")]
    write_csv(label_audit_summary(audits), snakemake.output.label_audit)
