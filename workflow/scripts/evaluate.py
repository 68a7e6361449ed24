"""Predict one dataset with one seed's model and compute its metrics."""

import pandas as pd

from leukoreport.evaluate import load_model, predict
from leukoreport.files import write_csv, write_json
from leukoreport.logs import step_log
from leukoreport.metrics import Uncertainty, compute_metrics
from leukoreport.train import resolve_device

with step_log(snakemake.log[0]):
    images = pd.read_csv(snakemake.input.images)
    if "split" in images.columns:
        images = images[images["split"] == "test"]
    learn = load_model(snakemake.input.model, cpu=resolve_device(snakemake.params.device) == "cpu")
    predictions = predict(learn, images, snakemake.params.batch_size, snakemake.threads)
    classes = [str(c) for c in learn.dls.vocab]
    metrics = compute_metrics(predictions, classes, snakemake.wildcards.dataset, int(snakemake.wildcards.seed),
                              Uncertainty.from_config(snakemake.params.uncertainty), int(snakemake.wildcards.split))
    write_csv(predictions, snakemake.output.predictions)
    write_json(metrics, snakemake.output.metrics)
    print(f"{snakemake.wildcards.dataset}: accuracy {metrics['accuracy']:.4f} on {metrics['n']} images")
