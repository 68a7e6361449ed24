"""Train one seed with the two-phase recipe (resuming a killed job's checkpoint) and export the learner."""

import json
from pathlib import Path

import pandas as pd

from leukoreport.base.atomic_io import write_csv, write_json
from leukoreport.base.checksums import sha256_file
from leukoreport.base.job_lock import exclusive_lock
from leukoreport.base.step_log import step_log
from leukoreport.data.image_cache import load_cache
from leukoreport.training.checkpoint import CHECKPOINT_NAME, remove_checkpoint
from leukoreport.training.safe_export import export_safe
from leukoreport.training.two_phase import TrainConfig, export_learner, train

with step_log(snakemake.log[0]) as log:
    run = Path(snakemake.output.model).parent
    checkpoint = run / CHECKPOINT_NAME
    what = f"training of split {snakemake.wildcards.split} seed {snakemake.wildcards.seed} ({run.as_posix()})"
    with exclusive_lock(run / ".train.lock", what):
        split = pd.read_csv(snakemake.input.split)
        with open(snakemake.input.weights) as fh:
            weights = json.loads(fh.read())
        cfg = TrainConfig.from_config(snakemake.params.train)
        cache = load_cache(snakemake.input.cache) if snakemake.input.cache else None
        learn, history, info = train(split, cfg, int(snakemake.wildcards.seed), snakemake.threads, weights["init"],
                                     cache, log.progress, checkpoint)
        info["split_seed"] = snakemake.params.split_seed
        export_learner(learn, snakemake.output.model)
        info.update(export_safe(learn, snakemake.output.weights, snakemake.output.spec, snakemake.params.train))
        info["model_sha256"] = sha256_file(snakemake.output.model)
        write_csv(history, snakemake.output.history)
        write_json(info, snakemake.output.info)  # last: it vouches for the files above
        remove_checkpoint(checkpoint)
        print(history.to_string(index=False))
