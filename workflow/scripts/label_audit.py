"""Suspected label errors of one dataset from the seed ensemble's probabilities (cleanlab); nothing is relabelled."""

from leukoreport.base.atomic_io import write_csv, write_json
from leukoreport.base.step_log import step_log
from leukoreport.report.figures.label_audit import plot_suspects
from leukoreport.stats.label_audit import audit_summary, find_suspects
from leukoreport.stats.metrics import prediction_classes, read_predictions

with step_log(snakemake.log[0]):
    classes = prediction_classes(snakemake.input[0])
    table = find_suspects(read_predictions(snakemake.input[0], classes), classes, snakemake.params.filter_by)
    summary = audit_summary(table)
    summary.update({"dataset": snakemake.wildcards.dataset, "split_seed": int(snakemake.wildcards.split),
                    "seeds": list(snakemake.params.seeds), "filter_by": snakemake.params.filter_by})
    write_csv(table, snakemake.output.table)
    write_json(summary, snakemake.output.summary)
    n = plot_suspects(table, snakemake.output.gallery, ".", f"Suspected label errors: {snakemake.wildcards.dataset}",
                      snakemake.params.gallery)
    print(f"{n} suspected label errors in {len(table)} images")
