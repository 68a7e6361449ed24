"""A variant whose training parameters equal an earlier variant's: copy that variant's trained model files."""

import shutil

from leukoreport.base.atomic_io import atomic_path, read_json, write_json
from leukoreport.base.step_log import step_log

with step_log(snakemake.log[0]):
    source = snakemake.params.source
    for key in ("model", "weights", "spec", "history"):
        with atomic_path(getattr(snakemake.output, key)) as tmp:
            shutil.copyfile(getattr(snakemake.input, key), tmp)
    info = read_json(snakemake.input.info, "reuse of a trained model")
    info["trained_as_variant"] = source
    write_json(info, snakemake.output.info)  # last: it vouches for the files above
    print(f"variant {snakemake.wildcards.variant} shares the training parameters of variant {source}: "
          f"its model files were copied from {snakemake.input.model}")
