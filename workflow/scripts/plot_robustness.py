"""Per-seed values per dataset, and galleries of images wrong in every run or unstable between runs."""

import json
from pathlib import Path

import pandas as pd

from leukoreport.report.figures.common import plot_agreement_gallery, plot_seed_values
from leukoreport.base.step_log import step_log

with step_log(snakemake.log[0]):
    out = Path(snakemake.output[0])
    out.mkdir(parents=True, exist_ok=True)
    seeds = pd.read_csv(snakemake.input.seeds)
    agreement = pd.read_csv(snakemake.input.agreement, dtype={"path": str})
    summary = json.loads(open(snakemake.input.robustness).read())
    for dataset in dict.fromkeys(seeds["dataset"]):
        ensembles = [s["datasets"][dataset]["ensemble"] for s in summary["by_split"].values()]
        plot_seed_values(seeds, dataset, out / f"seeds_{dataset}.png", ensemble=ensembles[0] if len(ensembles) == 1 else None)
        for split in dict.fromkeys(agreement["split_seed"]):
            rows = agreement[(agreement["split_seed"] == split) & (agreement["dataset"] == dataset)]
            for kind in ("always_wrong", "unstable"):
                plot_agreement_gallery(rows, kind, out / f"split{split}_{dataset}_{kind}.png",
                                       limit=snakemake.params.limit)
