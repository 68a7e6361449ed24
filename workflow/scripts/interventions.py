"""Predict one external set of one run again under each evaluation-time intervention (leukoreport.inference.
interventions) from the images rule intervention_images wrote once per split and set: interventions.csv (one row
per image and intervention) and interventions.json."""

import pandas as pd

from leukoreport.base.atomic_io import write_csv, write_json
from leukoreport.base.step_log import step_log
from leukoreport.config.settings import ShiftSettings
from leukoreport.data.colour_normalisation import read_reference
from leukoreport.data.embeddings import load_embeddings
from leukoreport.data.intervention_images import read_prepared
from leukoreport.inference.interventions import EvaluationOptions, run_interventions
from leukoreport.inference.model_files import load_model_file
from leukoreport.training.device import resolve_device

with step_log(snakemake.log[0]) as log:
    name, inp = snakemake.params.name, snakemake.input
    images = pd.read_csv(inp.images)
    # A variant with evaluation options (AdaBN, stain normalisation) predicts its sets with them; the interventions'
    # plain row is the model alone, so it is checked against predictions.csv only without such options.
    options = EvaluationOptions.from_config(snakemake.params.evaluation)
    expected = None if options.adabn or options.transforms_images else pd.read_csv(inp.predictions)
    learn = load_model_file(inp.model, cpu=resolve_device(snakemake.params.device) == "cpu")
    table, summary = run_interventions(
        learn, images, expected, read_reference(inp.reference), load_embeddings(inp.train),
        load_embeddings(inp.test), ShiftSettings(**snakemake.params.settings), name,
        batch_size=snakemake.params.batch_size, num_workers=snakemake.threads, tta=bool(snakemake.params.tta),
        seed=int(snakemake.wildcards.seed), scale_tolerance=float(snakemake.params.scale_tolerance),
        progress=log.progress, where=inp.predictions,
        prepared=read_prepared(f"{inp.prepared}/index.csv", inp.prepared_summary))
    summary["plain_is_predictions_csv"] = expected is not None
    write_csv(table, snakemake.output.table)
    write_json(summary, snakemake.output.summary)
    accuracy = table.groupby("intervention", sort=False)["correct"].mean()
    print(f"{name}: accuracy " + ", ".join(f"{k} {v:.4f}" for k, v in accuracy.items()))
