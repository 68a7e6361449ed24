"""Per-image colour, sharpness, size and stain statistics of a split's train and test images or of one external
set, and that set's shift from the training images (table and distribution plots), in one job: the images are
decoded once, spread over the job's threads as processes."""

import pandas as pd

from leukoreport.base.atomic_io import write_csv
from leukoreport.base.step_log import step_log
from leukoreport.data.image_stats import shift_table, statistics_table
from leukoreport.report.figures.image_shift import plot_distributions

with step_log(snakemake.log[0]):
    images = pd.read_csv(snakemake.input.images)
    for group, out in zip(snakemake.params.groups, snakemake.output.stats):
        rows = images[images["split"] == group] if "split" in images.columns else images
        table = statistics_table(list(rows["path"]), max_side=snakemake.params.max_side, workers=snakemake.threads)
        table.insert(1, "label", list(rows["label"]))
        write_csv(table, out)
        print(f"{group}: statistics of {len(table)} images")
    # The shift is computed from the statistics as written, as a separate job reading the CSVs would.
    stats = dict(zip(snakemake.params.groups, snakemake.output.stats))
    train = pd.read_csv(stats.get("train") or snakemake.input.train)
    name = snakemake.params.dataset
    data = pd.read_csv(stats[name])
    shift = shift_table(train, data)
    write_csv(shift, snakemake.output.table)
    plot_distributions(train, data, name, snakemake.output.figure)
    print(shift.head(3).to_string(index=False))
