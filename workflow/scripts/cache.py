"""Decode and resize the train and valid images of one split once, for training from memory."""

import pandas as pd

from leukoreport.fastload import save_cache, split_cache
from leukoreport.logs import step_log

with step_log(snakemake.log[0]):
    split = pd.read_csv(snakemake.input[0], dtype={"path": str})
    cache = split_cache(split, int(snakemake.wildcards.size), snakemake.threads)
    save_cache(cache, snakemake.output[0])
    print(f"{len(cache)} images, array {cache.pixels.shape}, {cache.pixels.nbytes / 1e6:.0f} MB")
