"""Per-image colour, sharpness, size and stain statistics of one image group (train, test or an external set)."""

import pandas as pd

from leukoreport.base.atomic_io import write_csv
from leukoreport.base.step_log import step_log
from leukoreport.data.image_stats import statistics_table

with step_log(snakemake.log[0]):
    images = pd.read_csv(snakemake.input.images)
    if "split" in images.columns:
        images = images[images["split"] == snakemake.params.group]
    table = statistics_table(list(images["path"]), max_side=snakemake.params.max_side)
    table.insert(1, "label", list(images["label"]))
    write_csv(table, snakemake.output[0])
    print(f"{snakemake.params.group}: statistics of {len(table)} images")
