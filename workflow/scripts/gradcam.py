"""Grad-CAM overlays of one run's error and top-loss images on one dataset."""

from pathlib import Path

from leukoreport.evaluate import load_model
from leukoreport.files import write_csv
from leukoreport.logs import step_log
from leukoreport.metrics import prediction_classes, read_predictions
from leukoreport.saliency import centre_share, gradcam_maps, plot_saliency_gallery, saliency_rows
from leukoreport.train import resolve_device

with step_log(snakemake.log[0]):
    classes = prediction_classes(snakemake.input.predictions)
    pred = read_predictions(snakemake.input.predictions, classes)
    n = snakemake.params.images
    rows = saliency_rows(pred, n, min(n, snakemake.params.top_losses)).head(n)
    learn = load_model(snakemake.input.model, cpu=resolve_device(snakemake.params.device) == "cpu")
    targets = [classes.index(c) for c in rows["target"]]
    maps = gradcam_maps(learn, [Path(p) for p in rows["path"]], targets)
    rows = rows.assign(cam_centre_share=[centre_share(m) for m in maps])
    write_csv(rows, snakemake.output.table)
    plot_saliency_gallery(rows, maps, snakemake.output.figure, ".",
                          f"Grad-CAM on the last convolutional block: {snakemake.wildcards.dataset}")
    print(f"Grad-CAM of {len(rows)} images")
