"""Discover and check one external set against the training classes."""

import pandas as pd

from leukoreport.data import check_external, discover
from leukoreport.files import write_csv
from leukoreport.logs import step_log

with step_log(snakemake.log[0]):
    classes = sorted(pd.read_csv(snakemake.input.split)["label"].unique())
    images = discover(snakemake.input.images)
    check_external(images, classes, snakemake.input.images)
    write_csv(images, snakemake.output[0])
    print(images["label"].value_counts().sort_index())
