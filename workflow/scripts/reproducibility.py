"""Evaluate the retrained model of the first (split seed, seed) on the test split, as rule `evaluate` does, and
compare its predictions and weights with the original run's bit for bit."""

import pandas as pd

from leukoreport.base.atomic_io import write_csv, write_json
from leukoreport.base.step_log import step_log
from leukoreport.inference.evaluate import predict
from leukoreport.inference.model_files import load_model_file
from leukoreport.inference.reproducibility import reproducibility_record
from leukoreport.training.device import resolve_device

with step_log(snakemake.log[0]) as log:
    split = pd.read_csv(snakemake.input.split)
    images = split[split["split"] == "test"]
    learn = load_model_file(snakemake.input.model, cpu=resolve_device(snakemake.params.device) == "cpu")
    seed = int(snakemake.params.seed)  # TTA seeded with the training seed, as in rule evaluate
    predictions = predict(learn, images, snakemake.params.batch_size, snakemake.threads, bool(snakemake.params.tta),
                          seed, log.progress)
    write_csv(predictions, snakemake.output.predictions)
    record = reproducibility_record(snakemake.params.split_seed, seed, snakemake.input.original_model,
                                    snakemake.input.original_predictions, snakemake.input.model,
                                    snakemake.output.predictions)
    write_json(record, snakemake.output.summary)
    print(f"split seed {record['split_seed']}, seed {seed} trained twice: identical predictions "
          f"{record['identical_predictions']} (max difference {record['max_probability_difference']:.3g}), identical "
          f"weights {record['identical_weights']} ({record['n_tensors_different']} of {record['n_tensors']} tensors "
          "differ)")
