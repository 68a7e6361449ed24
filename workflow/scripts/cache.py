"""Decode and resize the train and valid images of one split once into the memory-mapped image cache."""

import pandas as pd

from leukoreport.base.step_log import step_log
from leukoreport.data.image_cache import split_cache

with step_log(snakemake.log[0]):
    split = pd.read_csv(snakemake.input[0], dtype={"path": str})
    cache = split_cache(split, int(snakemake.wildcards.size), snakemake.threads, snakemake.output[0])
    print(f"{len(cache)} images, {len(cache.pixels)} pixels, {cache.nbytes / 1e6:.0f} MB")
