"""Discover and check the training images, then write the stratified split."""

from leukoreport.base.atomic_io import write_csv
from leukoreport.base.step_log import step_log
from leukoreport.data.images import discover
from leukoreport.data.split import stratified_split, subsample

with step_log(snakemake.log[0]):
    images = discover(snakemake.input[0])
    images = subsample(images, snakemake.params.max_per_class, snakemake.params.seed)
    split = stratified_split(images, tuple(snakemake.params.fractions), snakemake.params.seed)
    write_csv(split, snakemake.output[0])
    print(split.groupby(["label", "split"]).size().unstack())
