"""Thumbnails of the most informative duplicate pairs the leakage audit found (report_limits.pairs of them)."""

import pandas as pd

from leukoreport.base.atomic_io import read_json
from leukoreport.base.step_log import step_log
from leukoreport.report.figures.leakage import plot_pair_gallery

with step_log(snakemake.log[0]):
    pairs = pd.read_csv(snakemake.input.pairs, dtype={"path_a": str, "path_b": str})
    summary = read_json(snakemake.input.summary)
    limit = snakemake.params.limit
    n = plot_pair_gallery(pairs, snakemake.output[0], ".", n_images=summary["n_images"], limit=limit)
    print(f"{n} pair(s), {min(n, limit)} drawn")
