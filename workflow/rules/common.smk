from snakemake.utils import validate

from leukoreport.config import check_config
from leukoreport.summary import run_keys

check_config(config, workflow.source_path("../schemas/config.schema.yaml"))


validate(config, schema="../schemas/config.schema.yaml")


SPLITS = [int(s) for s in config["split_seeds"]]
SEEDS = [int(s) for s in config["seeds"]]
EXTERNAL = dict(config["external"])
DATASETS = ["test"] + list(EXTERNAL)


wildcard_constraints:
    split=r"\d+",
    seed=r"\d+",
    dataset="|".join(DATASETS),
    name="|".join(EXTERNAL) or "(?!)",
    doc="report|summary",
    size=r"\d+",


RUN = "results/splits/{split}/seeds/{seed}"


def runs(pattern, **extra):
    """`pattern` (relative to a run folder) for every split seed and training seed, as paths."""
    return expand(f"{RUN}/{pattern}", split=SPLITS, seed=SEEDS, **extra)


def dataset_images(wildcards):
    """The image list a dataset is evaluated on: the split for `test`, else the checked external CSV."""
    if wildcards.dataset == "test":
        return f"results/splits/{wildcards.split}/split.csv"
    return f"results/data/external/{wildcards.dataset}.csv"


def train_params():
    """The training part of the config, passed to the train script."""
    keys = [
        "size",
        "batch_size",
        "pretrained",
        "schedule",
        "phases",
        "augmentation",
        "num_workers",
        "device",
        "precision",
        "channels_last",
        "deterministic",
    ]
    return {key: config[key] for key in keys}


def cache_input(wildcards):
    """The image cache of the run's split when `image_cache` is on, else nothing."""
    if not config["image_cache"]:
        return []
    return f"results/splits/{wildcards.split}/cache{config['size']}.npz"


def train_gpus():
    """GPUs a training job declares (`resources: gpu`): `train_gpus` unless the config forces the CPU."""
    return 0 if config["device"] == "cpu" else config["train_gpus"]


def uncertainty_params():
    """The interval and calibration settings, passed to the evaluate script."""
    keys = [
        "confidence_level",
        "bootstrap_resamples",
        "bootstrap_seed",
        "calibration_bins",
    ]
    return {key: config[key] for key in keys}


def run_labels():
    """Display names of the runs in `runs()` order: 'seed 1', or 'split 42 · seed 1' with several split seeds."""
    return [key.label for key in run_keys(SPLITS, SEEDS)]
