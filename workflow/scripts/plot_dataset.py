"""Confusion matrix, per-class scores, reliability diagram, top losses and error gallery of one seed on one dataset."""

from leukoreport.base.atomic_io import read_json
from leukoreport.base.step_log import step_log
from leukoreport.report.figures.dataset import plot_confusion, plot_per_class, plot_reliability
from leukoreport.report.figures.galleries import plot_error_gallery, plot_top_losses
from leukoreport.stats.metrics import read_predictions

with step_log(snakemake.log[0]):
    metrics = read_json(snakemake.input.metrics)
    predictions = read_predictions(snakemake.input.predictions, metrics["classes"])
    plot_confusion(metrics, snakemake.output.confusion)
    plot_per_class(metrics, snakemake.output.per_class)
    plot_reliability(metrics, snakemake.output.reliability)
    plot_top_losses(predictions, metrics["classes"], snakemake.output.top_losses, ".", snakemake.params.top_losses)
    limit = snakemake.params.limit
    n_errors = plot_error_gallery(predictions, metrics["classes"], snakemake.output.errors, limit=limit)
    print(f"{n_errors} misclassified images, {min(n_errors, limit)} drawn")
