"""Write the transformed images of one external set for the interventions of one split (Reinhard, Macenko, scale
matching, scale matching then Reinhard): a folder with index.csv (paths relative to it) and one subfolder per
transform, and intervention_images.json (scale match, seconds per transform, images Macenko left unchanged)."""

from pathlib import Path

import pandas as pd

from leukoreport.base.atomic_io import write_csv, write_json
from leukoreport.base.step_log import step_log
from leukoreport.data.colour_normalisation import read_reference
from leukoreport.data.intervention_images import prepare_images

with step_log(snakemake.log[0]) as log:
    inp, params = snakemake.input, snakemake.params
    folder = Path(snakemake.output.folder)
    folder.mkdir(parents=True, exist_ok=True)
    images = pd.read_csv(inp.images)
    prepared = prepare_images(list(images["path"].astype(str)), read_reference(inp.reference), folder,
                              params.work_side, float(params.scale_tolerance), progress=log.progress)
    index = prepared.index.assign(path=[Path(p).relative_to(folder).as_posix() for p in prepared.index["path"]])
    write_csv(index, folder / "index.csv")
    summary = prepared.summary() | {
        "dataset": params.name, "reference": inp.reference, "scale_tolerance": float(params.scale_tolerance),
        "shared": "written once per split and set; every run (seed, variant) of the split reads these images",
        "work_side_note": "each image downsampled (Lanczos, aspect ratio kept, never upsampled) so that its shorter "
                          "side is work_side pixels before the transforms; the learner's Resize(size) resizes "
                          "anyway, so the model sees the same content, resampled"}
    write_json(summary, snakemake.output.summary)
    print(f"{params.name}: {summary['n_images']} images, scale factor {prepared.match.factor:.3f}, seconds per "
          f"image " + ", ".join(f"{k} {v:.4f}" for k, v in summary["seconds_per_image"].items()))
