"""Average the seeds' class probabilities on one dataset of one split and score the ensemble."""

import pandas as pd

from leukoreport.base.atomic_io import write_csv, write_json
from leukoreport.base.step_log import step_log
from leukoreport.config.settings import Uncertainty
from leukoreport.stats.baselines import add_baselines
from leukoreport.stats.metrics import compute_metrics, prediction_classes, read_predictions
from leukoreport.stats.robustness import ensemble

with step_log(snakemake.log[0]):
    classes = prediction_classes(snakemake.input.predictions[0])
    preds = {f"seed {seed}": read_predictions(path, classes)
             for seed, path in zip(snakemake.params.seeds, snakemake.input.predictions)}
    table = ensemble(preds, classes)
    metrics = compute_metrics(table, classes, snakemake.wildcards.dataset, None,
                              Uncertainty.from_config(snakemake.params.uncertainty), int(snakemake.wildcards.split))
    split = pd.read_csv(snakemake.input.split)
    add_baselines(metrics, table, split.loc[split["split"] == "train", "label"],
                  Uncertainty.from_config(snakemake.params.uncertainty))
    metrics["seeds"] = list(snakemake.params.seeds)
    write_csv(table, snakemake.output.predictions)
    write_json(metrics, snakemake.output.metrics)
    print(f"ensemble of {len(preds)} seeds: accuracy {metrics['accuracy']:.4f} on {metrics['n']} images")
