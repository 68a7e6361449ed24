"""Predict one dataset with one seed's model (one forward pass: predictions and features; optional seeded TTA
for the predictions) and score it; model.pkl is first checked against the SHA-256 its train.json records.
With the model loaded, the same job draws the Grad-CAM gallery, for the test split embeds the training sample, and
measures the set's shift from the training sample (domain classifier, OOD scores), and for an external set predicts
it again under each intervention from the images rule intervention_images prepared (formerly rules gradcam,
embed_train, shift and interventions); their seconds go to timing.json (scripts/validity_cost.py)."""

import time

import pandas as pd

from leukoreport.base.atomic_io import write_csv, write_json
from leukoreport.base.job_timing import JobTiming
from leukoreport.base.step_log import step_log
from leukoreport.config.settings import ShiftSettings, Uncertainty
from leukoreport.data.colour_normalisation import read_reference
from leukoreport.data.embeddings import load_embeddings, save_embeddings, train_sample
from leukoreport.data.intervention_images import read_prepared
from leukoreport.inference.evaluate import predict_with_features
from leukoreport.inference.interventions import (
    EvaluationOptions,
    OptionOutcome,
    apply_evaluation_options,
    run_interventions,
)
from leukoreport.inference.model_files import load_model_file, verify_model
from leukoreport.stats.baselines import add_baselines
from leukoreport.stats.metrics import compute_metrics, read_predictions
from leukoreport.stats.validity import run_shift
from leukoreport.training.device import resolve_device

with step_log(snakemake.log[0]) as log:
    dataset, out = snakemake.params.dataset, snakemake.output
    images = pd.read_csv(snakemake.input.images)
    if "split" in images.columns:
        images = images[images["split"] == "test"]
    split = pd.read_csv(snakemake.input.split)
    if not verify_model(snakemake.input.model, snakemake.input.info):
        print(f"{snakemake.input.info}: no model_sha256 recorded (trained before checksums): "
              f"{snakemake.input.model} not checked")
    learn = load_model_file(snakemake.input.model, cpu=resolve_device(snakemake.params.device) == "cpu")
    tta, seed = bool(snakemake.params.tta), int(snakemake.wildcards.seed)  # TTA seeded with the training seed
    options = EvaluationOptions.from_config(snakemake.params.evaluation)  # the variant's `evaluation` key
    with_options = options.adabn or options.transforms_images
    reference = read_reference(snakemake.input.reference) if snakemake.input.reference else None
    if with_options:
        outcome = apply_evaluation_options(learn, images, options, reference, snakemake.params.batch_size,
                                           snakemake.threads, tta, seed, log.progress)
        print(f"{dataset}: evaluated with the variant's evaluation options (AdaBN: {options.adabn}, stain "
              f"normalisation: {options.stain_normalisation}; {outcome.seconds:.1f} s)")
    else:  # the model alone: also the interventions' plain row
        start = time.perf_counter()
        predicted = predict_with_features(learn, images, snakemake.params.batch_size, snakemake.threads, tta, seed,
                                          log.progress)
        outcome = OptionOutcome(*predicted, 0.0, 0.0, time.perf_counter() - start)
    predictions, embeddings = outcome.predictions, outcome.embeddings
    classes = [str(c) for c in learn.dls.vocab]
    uncertainty = Uncertainty.from_config(snakemake.params.uncertainty)
    metrics = compute_metrics(predictions, classes, dataset, seed, uncertainty, int(snakemake.wildcards.split))
    add_baselines(metrics, predictions, split.loc[split["split"] == "train", "label"], uncertainty)
    metrics["tta"] = tta
    metrics["evaluation"] = {"adabn": options.adabn, "stain_normalisation": options.stain_normalisation}
    write_csv(predictions, out.predictions)
    save_embeddings(embeddings, out.embeddings)
    write_json(metrics, out.metrics)
    print(f"{dataset}: accuracy {metrics['accuracy']:.4f} on {metrics['n']} images "
          f"(always '{metrics['baselines']['majority_class']}': {metrics['baselines']['majority_accuracy']:.4f})")
    timing = JobTiming("evaluate")
    if getattr(out, "saliency_table", None):
        with timing.measure("gradcam"):
            from leukoreport.inference.saliency import gradcam_table
            from leukoreport.report.figures.saliency import plot_saliency_gallery

            gradcam = snakemake.params.gradcam
            rows, maps = gradcam_table(learn, out.predictions, gradcam["images"], gradcam["top_losses"])
            write_csv(rows, out.saliency_table)
            plot_saliency_gallery(rows, maps, out.saliency_figure, ".",
                                  f"Grad-CAM on the last convolutional block: {dataset}")
            print(f"{dataset}: Grad-CAM of {len(rows)} images")
    if getattr(out, "train_embeddings", None):
        with timing.measure("embed_train"):
            rows = train_sample(split, snakemake.params.train_sample, seed)
            _, train = predict_with_features(learn, rows, snakemake.params.batch_size, snakemake.threads,
                                             progress=log.progress)
            save_embeddings(train, out.train_embeddings)
            print(f"embedded {len(rows)} training images ({train.features.shape[1]} features)")
    if getattr(out, "shift", None) or getattr(out, "interventions_table", None):
        # the run's training-sample and test-split embeddings that shift is measured against, read once from the
        # files as written (as a separate job reading them would; milliseconds)
        train = load_embeddings(getattr(out, "train_embeddings", None) or snakemake.input.train_embeddings)
        test = load_embeddings(out.embeddings if dataset == "test" else snakemake.input.test_embeddings)
    if getattr(out, "shift", None):
        with timing.measure("shift"):
            data = test if dataset == "test" else load_embeddings(out.embeddings)
            table, summary, curve = run_shift(train, test, data, read_predictions(out.predictions, classes), dataset,
                                              ShiftSettings(**snakemake.params.shift))
            write_csv(table, out.ood)
            write_csv(curve, out.curve)
            write_json(summary, out.shift)
            print(dataset, {k: v for k, v in summary.items() if k in ("domain_classifier", "n")})
    if getattr(out, "interventions_table", None):
        with timing.measure("interventions"):  # the set again under each intervention (no labels used)
            inputs, settings = snakemake.input, snakemake.params.interventions
            # The plain row is the model alone: this job's own evaluation, unless the variant evaluates with options
            # (then it is predicted again without them).
            table, summary = run_interventions(
                learn, images, None, reference, train, test, ShiftSettings(**settings["shift"]), dataset,
                batch_size=snakemake.params.batch_size, num_workers=snakemake.threads, tta=tta, seed=seed,
                scale_tolerance=float(settings["scale_tolerance"]), progress=log.progress,
                prepared=read_prepared(f"{inputs.prepared}/index.csv", inputs.prepared_summary),
                plain=None if with_options else outcome)
            summary["plain_is_predictions_csv"] = not with_options
            write_csv(table, out.interventions_table)
            write_json(summary, out.interventions_summary)
            accuracy = table.groupby("intervention", sort=False)["correct"].mean()
            print(f"{dataset}: accuracy " + ", ".join(f"{k} {v:.4f}" for k, v in accuracy.items()))
    timing.write(out.timing)
