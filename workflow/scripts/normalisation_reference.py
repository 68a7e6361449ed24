"""Fit the reference statistics of the evaluation-time interventions (Reinhard LAB means and SDs, Macenko stain
matrix, median cell share) on a seeded, stratified sample of one split's training images."""

import pandas as pd

from leukoreport.base.atomic_io import write_json
from leukoreport.base.step_log import step_log
from leukoreport.data.colour_normalisation import fit_reference
from leukoreport.data.embeddings import train_sample

with step_log(snakemake.log[0]):
    split = pd.read_csv(snakemake.input.split)
    seed = int(snakemake.params.seed)
    rows = train_sample(split, snakemake.params.sample, seed)
    reference = fit_reference(list(rows["path"]), seed)
    out = reference.to_dict() | {"split": snakemake.input.split, "sample": snakemake.params.sample}
    write_json(out, snakemake.output[0])
    print(f"normalisation reference from {reference.n_images} training images: cell share "
          f"{reference.cell_share:.4f}, {reference.macenko_note or 'Macenko fitted'}")
