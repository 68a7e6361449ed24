"""Pooled backbone features of the training images (a seeded, stratified sample) for one run."""

import pandas as pd

from leukoreport.base.step_log import step_log
from leukoreport.data.embeddings import save_embeddings, train_sample
from leukoreport.inference.evaluate import predict_with_features
from leukoreport.inference.model_files import load_model_file
from leukoreport.training.device import resolve_device

with step_log(snakemake.log[0]) as log:
    rows = train_sample(pd.read_csv(snakemake.input.split), snakemake.params.limit, snakemake.params.seed)
    learn = load_model_file(snakemake.input.model, cpu=resolve_device(snakemake.params.device) == "cpu")
    _, embeddings = predict_with_features(learn, rows, snakemake.params.batch_size, snakemake.threads,
                                          progress=log.progress)
    save_embeddings(embeddings, snakemake.output[0])
    print(f"embedded {len(rows)} training images ({embeddings.features.shape[1]} features)")
