from dataclasses import asdict

from leukoreport.config.checks import check_config, exit_on_error
from leukoreport.config.claims import load_claims
from leukoreport.config.provenance import external_paths
from leukoreport.config.settings import ShiftSettings
from leukoreport.config.variants import reference_variant, variant_configs
from leukoreport.stats.run_tables import run_keys, run_label

# Recipe variants (config key `variants`): each variant's runs, summaries and diagnostics live under
# results/variants/{variant}/ with the same layout as results/ of a single-recipe run; data, splits, caches,
# the leakage audit and image statistics stay shared under results/.
# A config error is one line `error: config key ...` and exit status 1.
with exit_on_error():
    config.update(
        check_config(config, workflow.source_path("../schemas/config.schema.yaml"))
    )
    VARIANTS = variant_configs(
        config, workflow.source_path("../schemas/config.schema.yaml")
    )
    # a bad claims file stops the run here, in one line
    if config["claims"]:
        load_claims(config["claims"])


REFERENCE = reference_variant(config)
ROOT = "results/variants/{variant}" if VARIANTS else "results"


SPLITS = [int(s) for s in config["split_seeds"]]
SEEDS = [int(s) for s in config["seeds"]]
EXTERNAL = external_paths(config)
DATASETS = ["test"] + list(EXTERNAL)
VALIDITY = config["validity"]


wildcard_constraints:
    split=r"\d+",
    seed=r"\d+",
    dataset="|".join(DATASETS),
    name="|".join(EXTERNAL) or "(?!)",
    doc="report|summary",
    group="|".join(["train"] + DATASETS),
    size=r"\d+",
    variant="|".join(VARIANTS) or "(?!)",


RUN = f"{ROOT}/splits/{{split}}/seeds/{{seed}}"


def runs(pattern, **extra):
    """`pattern` (relative to a run folder) for every split seed and training seed; `{variant}` stays open."""
    return expand(
        f"{RUN}/{pattern}", split=SPLITS, seed=SEEDS, allow_missing=True, **extra
    )


def every(patterns, **wildcards):
    """`expand` over the given wildcards and, with variants, over every variant."""
    if VARIANTS:
        wildcards["variant"] = list(VARIANTS)
    return expand(patterns, **wildcards)


def variants_outputs():
    """The comparison of the variants (rule `variants`, `plot_variants`), or nothing for a single recipe."""
    if not VARIANTS:
        return []
    return [
        "results/summary/variants.json",
        "results/summary/variants.csv",
        "results/summary/variant_comparisons.csv",
        "results/summary/variants",
    ]


def recipe(wildcards):
    """The config of the job's variant (the whole config for a single recipe)."""
    return VARIANTS[wildcards.variant] if VARIANTS else config


def recipes():
    """Every variant's config (the config alone for a single recipe)."""
    return list(VARIANTS.values()) or [config]


def variant_label(wildcards):
    """'variant NAME · ' for figure titles of a variant's run, '' for a single recipe."""
    return f"variant {wildcards.variant} · " if VARIANTS else ""


def dataset_images(wildcards):
    """The image list a dataset is evaluated on: the split for `test`, else the checked external CSV."""
    if wildcards.dataset == "test":
        return f"results/splits/{wildcards.split}/split.csv"
    return f"results/data/external/{wildcards.dataset}.csv"


def canonical(value):
    """`value` with the keys of every mapping in it sorted: Snakemake compares params by their text, so the order
    of keys in a config file would otherwise rerun jobs."""
    if isinstance(value, dict):
        return {key: canonical(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [canonical(item) for item in value]
    return value


def train_params(wildcards):
    """The training part of the job's variant config (mappings in sorted key order), passed to the train script."""
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
        "stain_augmentation",
        "max_batches",
    ]
    cfg = recipe(wildcards)
    return {key: canonical(cfg[key]) for key in keys}


def cache_input(wildcards):
    """The image cache file of the run's split when `image_cache` is on, else nothing."""
    if not config["image_cache"]:
        return []
    return f"results/splits/{wildcards.split}/cache{recipe(wildcards)['size']}.bin"


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


def shift_settings():
    """The embedding diagnostics' settings (leukoreport.config.settings.ShiftSettings) as a plain dict."""
    return asdict(ShiftSettings.from_config(config))


def validity_on(kind):
    """Whether the diagnostic `kind` runs (`shift` stands for the domain classifier or the OOD scores)."""
    if kind == "shift":
        return VALIDITY["domain_classifier"]["enabled"] or VALIDITY["ood"]["enabled"]
    return VALIDITY[kind]["enabled"]


def validity_files(kind):
    """The files a diagnostic writes for every run or split and dataset, or nothing when it is off."""
    if not validity_on(kind):
        return []
    per_split = "results/splits/{split}/validity/{dataset}/{file}"
    return {
        "shift": runs("{dataset}/shift.json", dataset=DATASETS),
        "ood": runs("{dataset}/ood.csv", dataset=DATASETS),
        "gradcam": runs(
            "{dataset}/{file}", dataset=DATASETS, file=["saliency.csv", "saliency.png"]
        ),
        "image_shift": expand(
            per_split,
            split=SPLITS,
            dataset=DATASETS,
            file=["image_shift.csv", "image_shift.png"],
        ),
        "label_audit": expand(
            f"{ROOT}/{per_split.removeprefix('results/')}",
            split=SPLITS,
            allow_missing=True,
            dataset=DATASETS,
            file=["label_audit.json", "label_issues.csv", "label_issues"],
        ),
    }[kind]


def validity_figures():
    """The per-run risk-coverage and OOD-band figures, when the OOD scores are on."""
    if not VALIDITY["ood"]["enabled"]:
        return []
    return runs("validity/{file}", file=["risk_coverage.png", "ood_bands.png"])


# The claims (workflow/rules/claims.smk): the same-seed retraining folder and the files the claims rules add.
REPRO = f"{ROOT}/splits/{{split}}/reproducibility"


def results_root(wildcards):
    """The job's results folder: `results`, or the variant's `results/variants/NAME`."""
    return ROOT.format(variant=wildcards.variant) if VARIANTS else ROOT


def reproducibility_files():
    """The reproducibility check's result for the first split seed (`{variant}` open), or nothing when it is off."""
    if not config["reproducibility_check"]:
        return []
    return [f"{ROOT}/splits/{SPLITS[0]}/reproducibility/reproducibility.json"]


def claims_outputs():
    """What the claims rules add to the run, for the default target and the reports: checklist.csv, the claims
    files (unless `claims: null`) and reproducibility.json (with `reproducibility_check: true`), of the reference
    variant."""
    files = [f"{ROOT}/summary/checklist.csv"] + reproducibility_files()
    if config["claims"]:
        files += [
            f"{ROOT}/summary/{name}"
            for name in ["claims.json", "claims.csv", "deviations.csv"]
        ]
    return expand(files, variant=REFERENCE) if VARIANTS else files


def claims_dir():
    """The folder of checklist.csv and the claims files (the reference variant's summary/ with variants)."""
    return (
        f"{ROOT}/summary".format(variant=REFERENCE) if VARIANTS else f"{ROOT}/summary"
    )
