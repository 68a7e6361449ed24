"""Grad-CAM overlays of one run's error and top-loss images on one dataset."""

from pathlib import Path

from leukoreport.base.atomic_io import write_csv
from leukoreport.base.step_log import step_log
from leukoreport.inference.model_files import load_model_file
from leukoreport.inference.saliency import centre_share, gradcam_maps, saliency_rows
from leukoreport.report.figures.saliency import plot_saliency_gallery
from leukoreport.stats.metrics import prediction_classes, read_predictions
from leukoreport.training.device import resolve_device

with step_log(snakemake.log[0]):
    name, n = snakemake.params.name, snakemake.params.images
    learn = load_model_file(snakemake.input.model, cpu=resolve_device(snakemake.params.device) == "cpu")
    classes = prediction_classes(snakemake.input.predictions)
    pred = read_predictions(snakemake.input.predictions, classes)
    rows = saliency_rows(pred, n, min(n, snakemake.params.top_losses)).head(n)
    maps = gradcam_maps(learn, [Path(p) for p in rows["path"]], [classes.index(c) for c in rows["target"]])
    rows = rows.assign(cam_centre_share=[centre_share(m) for m in maps])
    write_csv(rows, snakemake.output.table)
    plot_saliency_gallery(rows, maps, snakemake.output.figure, ".", f"Grad-CAM on the last convolutional block: {name}")
    print(f"{name}: Grad-CAM of {len(rows)} images")
