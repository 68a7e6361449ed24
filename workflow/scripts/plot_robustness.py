"""Per-seed values per dataset, and galleries of images wrong in every run, unstable between runs, or wrong in the
most runs ("wrong in k of n seeds", the report's per-dataset error gallery)."""

from pathlib import Path

import pandas as pd

from leukoreport.base.atomic_io import read_json
from leukoreport.base.step_log import step_log
from leukoreport.report.figures.galleries import plot_agreement_gallery
from leukoreport.report.figures.seeds import plot_seed_values

with step_log(snakemake.log[0]):
    out = Path(snakemake.output[0])
    out.mkdir(parents=True, exist_ok=True)
    seeds = pd.read_csv(snakemake.input.seeds)
    agreement = pd.read_csv(snakemake.input.agreement, dtype={"path": str})
    summary = read_json(snakemake.input.robustness)
    for dataset in dict.fromkeys(seeds["dataset"]):
        ensembles = [s["datasets"][dataset]["ensemble"] for s in summary["by_split"].values()]
        ensemble = ensembles[0] if len(ensembles) == 1 else None
        plot_seed_values(seeds, dataset, out / f"seeds_{dataset}.png", ensemble=ensemble)
        for split in dict.fromkeys(agreement["split_seed"]):
            rows = agreement[(agreement["split_seed"] == split) & (agreement["dataset"] == dataset)]
            for kind in ("always_wrong", "unstable", "most_wrong"):
                plot_agreement_gallery(rows, kind, out / f"split{split}_{dataset}_{kind}.png",
                                       limit=snakemake.params.limit)
