"""Grad-CAM overlays of one run's error and top-loss images on every dataset (the model loaded once)."""

from pathlib import Path

from leukoreport.base.atomic_io import write_csv
from leukoreport.base.step_log import step_log
from leukoreport.inference.evaluate import load_model
from leukoreport.inference.saliency import centre_share, gradcam_maps, saliency_rows
from leukoreport.report.figures.saliency import plot_saliency_gallery
from leukoreport.stats.metrics import prediction_classes, read_predictions
from leukoreport.training.device import resolve_device

with step_log(snakemake.log[0]):
    learn = load_model(snakemake.input.model, cpu=resolve_device(snakemake.params.device) == "cpu")
    n = snakemake.params.images
    for i, name in enumerate(snakemake.params.datasets):
        classes = prediction_classes(snakemake.input.predictions[i])
        pred = read_predictions(snakemake.input.predictions[i], classes)
        rows = saliency_rows(pred, n, min(n, snakemake.params.top_losses)).head(n)
        maps = gradcam_maps(learn, [Path(p) for p in rows["path"]], [classes.index(c) for c in rows["target"]])
        rows = rows.assign(cam_centre_share=[centre_share(m) for m in maps])
        write_csv(rows, snakemake.output.table[i])
        plot_saliency_gallery(rows, maps, snakemake.output.figure[i], ".",
                              f"Grad-CAM on the last convolutional block: {name}")
        print(f"{name}: Grad-CAM of {len(rows)} images")
