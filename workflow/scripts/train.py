"""Train one seed with the two-phase recipe and export the learner."""

import json

import pandas as pd

from leukoreport.base.atomic_io import write_csv, write_json
from leukoreport.base.step_log import step_log
from leukoreport.data.image_cache import load_cache
from leukoreport.training.two_phase import TrainConfig, export_learner, train

with step_log(snakemake.log[0]) as log:
    split = pd.read_csv(snakemake.input.split)
    with open(snakemake.input.weights) as fh:
        weights = json.loads(fh.read())
    cfg = TrainConfig.from_config(snakemake.params.train)
    cache = load_cache(snakemake.input.cache) if snakemake.input.cache else None
    learn, history, info = train(split, cfg, int(snakemake.wildcards.seed), snakemake.threads, weights["init"], cache,
                                 log.progress)
    info["split_seed"] = snakemake.params.split_seed
    export_learner(learn, snakemake.output.model)
    write_csv(history, snakemake.output.history)
    write_json(info, snakemake.output.info)
    print(history.to_string(index=False))
