"""Check (and if allowed, download) one architecture's ImageNet weights before any training starts."""

from leukoreport.base.atomic_io import write_json
from leukoreport.base.step_log import step_log
from leukoreport.training.weights import check_weights

with step_log(snakemake.log[0]):
    info = check_weights(snakemake.params.pretrained, download=snakemake.params.download,
                         arch=snakemake.wildcards.arch)
    write_json(info.to_dict(), snakemake.output[0])
    print(info)
