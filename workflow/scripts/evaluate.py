"""Predict one dataset with one seed's model (one forward pass: predictions and features; optional seeded TTA
for the predictions) and score it; model.pkl is first checked against the SHA-256 its train.json records."""

import pandas as pd

from leukoreport.base.atomic_io import write_csv, write_json
from leukoreport.base.step_log import step_log
from leukoreport.config.settings import Uncertainty
from leukoreport.data.embeddings import save_embeddings
from leukoreport.inference.evaluate import predict_with_features
from leukoreport.inference.model_files import load_model_file, verify_model
from leukoreport.stats.baselines import add_baselines
from leukoreport.stats.metrics import compute_metrics
from leukoreport.training.device import resolve_device

with step_log(snakemake.log[0]) as log:
    images = pd.read_csv(snakemake.input.images)
    if "split" in images.columns:
        images = images[images["split"] == "test"]
    split = pd.read_csv(snakemake.input.split)
    if not verify_model(snakemake.input.model, snakemake.input.info):
        print(f"{snakemake.input.info}: no model_sha256 recorded (trained before checksums): "
              f"{snakemake.input.model} not checked")
    learn = load_model_file(snakemake.input.model, cpu=resolve_device(snakemake.params.device) == "cpu")
    tta, seed = bool(snakemake.params.tta), int(snakemake.wildcards.seed)  # TTA seeded with the training seed
    predictions, embeddings = predict_with_features(learn, images, snakemake.params.batch_size, snakemake.threads,
                                                    tta, seed, log.progress)
    classes = [str(c) for c in learn.dls.vocab]
    uncertainty = Uncertainty.from_config(snakemake.params.uncertainty)
    metrics = compute_metrics(predictions, classes, snakemake.wildcards.dataset, int(snakemake.wildcards.seed),
                              uncertainty, int(snakemake.wildcards.split))
    add_baselines(metrics, predictions, split.loc[split["split"] == "train", "label"], uncertainty)
    metrics["tta"] = tta
    write_csv(predictions, snakemake.output.predictions)
    save_embeddings(embeddings, snakemake.output.embeddings)
    write_json(metrics, snakemake.output.metrics)
    print(f"{snakemake.wildcards.dataset}: accuracy {metrics['accuracy']:.4f} on {metrics['n']} images "
          f"(always '{metrics['baselines']['majority_class']}': {metrics['baselines']['majority_accuracy']:.4f})")
