from dataclasses import asdict

from leukoreport.config.checks import check_config, exit_on_error
from leukoreport.config.claims import load_claims
from leukoreport.config.provenance import external_paths
from leukoreport.config.settings import ShiftSettings
from leukoreport.config.variants import (
    canonical,
    reference_variant,
    shared_training,
    variant_configs,
)
from leukoreport.config.variants import train_params as variant_train_params
from leukoreport.stats.run_tables import run_keys, run_label
from leukoreport.training.normalisation import has_imagenet_weights

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
# Variants that differ from an earlier one only after training (`evaluation`, `tta`) reuse its models.
SHARED = shared_training(VARIANTS)
TRAINED = [name for name in VARIANTS if name not in SHARED]
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


def shared_model(file):
    """Input function: `file` of the same run in the variant whose trained models the job's variant reuses."""

    def path(wildcards):
        source = SHARED[wildcards.variant]
        return f"results/variants/{source}/splits/{wildcards.split}/seeds/{wildcards.seed}/{file}"

    return path


def train_params(wildcards):
    """The training part of the job's variant config, passed to the train script
    (leukoreport.config.variants.train_params: `arch`, `norm` only when changed)."""
    return variant_train_params(recipe(wildcards))


def evaluation_options(wildcards):
    """The job's variant's evaluation options (config key `evaluation`: adabn, stain_normalisation); they change
    no training and are not in `train_params`."""
    return canonical(recipe(wildcards)["evaluation"])


def interventions_on():
    """Whether the interventions at evaluation run (`validity.interventions.enabled`)."""
    return bool(VALIDITY.get("interventions", {}).get("enabled", False))


def evaluation_reference(wildcards):
    """The split's normalisation reference when the job's variant normalises stain at evaluation or, for an
    external set, when the interventions run; else nothing."""
    external = wildcards.get("dataset", "test") != "test"
    if recipe(wildcards)["evaluation"]["stain_normalisation"] == "none" and not (
        external and interventions_on()
    ):
        return []
    return f"results/splits/{wildcards.split}/validity/normalisation_reference.json"


def weights_file(wildcards):
    """The weights job's record for the architecture of the job's variant (results/weights/ARCH.json)."""
    return f"results/weights/{recipe(wildcards)['arch']}.json"


def reference_weights_file():
    """The weights job's record the reports show: that of the (reference variant's) architecture."""
    arch = (VARIANTS[REFERENCE] if VARIANTS else config)["arch"]
    return f"results/weights/{arch}.json"


def imagenet_needed(arch):
    """Whether some variant starts `arch` from ImageNet weights (pretrained, and torchvision has them for its
    `norm`: not for GroupNorm)."""
    return any(
        cfg["pretrained"]
        and cfg["arch"] == arch
        and has_imagenet_weights(cfg["arch"], cfg["norm"])
        for cfg in recipes()
    )


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


def work_side():
    """`validity.interventions.work_side`: the shorter side (pixels) the images are transformed at, never below the
    largest `size` of any recipe (the learner would otherwise upsample what was downsampled); None: full size.
    """
    side = VALIDITY.get("interventions", {}).get("work_side")
    return (
        None if side is None else max(int(side), *(int(r["size"]) for r in recipes()))
    )


def interventions_outputs():
    """results/summary/interventions.{csv,json} (of every variant) for the reports when `validity.interventions` is
    on, else nothing."""
    if not interventions_on():
        return []
    return every(f"{ROOT}/summary/interventions.{{ext}}", ext=["csv", "json"])


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


# The evaluate and ensemble jobs' outputs and settings for the diagnostics they run in the same job.
def evaluate_outputs(folder):
    """The files an evaluate job writes into `folder`; the Grad-CAM gallery and the shift diagnostics (domain
    classifier, OOD scores, risk-coverage) only when they are on."""
    files = {
        "predictions": f"{folder}/predictions.csv",
        "embeddings": f"{folder}/embeddings.npz",
        "metrics": f"{folder}/metrics.json",
        "timing": f"{folder}/timing.json",
    }
    if validity_on("gradcam"):
        files |= {
            "saliency_table": f"{folder}/saliency.csv",
            "saliency_figure": f"{folder}/saliency.png",
        }
    if validity_on("shift"):
        files |= {
            "ood": f"{folder}/ood.csv",
            "shift": f"{folder}/shift.json",
            "curve": f"{folder}/risk_coverage.csv",
        }
    return files


def external_evaluation_inputs():
    """What an external set's evaluate job reads besides the model and images: the run's training-sample and
    test-split embeddings (from its evaluate_test job) when the shift diagnostics or the interventions run, and the
    set's images prepared once per split (rule intervention_images) when the interventions run.
    """
    files = {}
    if validity_on("shift") or interventions_on():
        files |= {
            "train_embeddings": f"{RUN}/train_embeddings.npz",
            "test_embeddings": f"{RUN}/test/embeddings.npz",
        }
    if interventions_on():
        folder = "results/splits/{split}/validity/{dataset}"
        files |= {
            "prepared": f"{folder}/intervention_images",
            "prepared_summary": f"{folder}/intervention_images.json",
        }
    return files


def interventions_files(folder):
    """The interventions' files an external set's evaluate job writes into `folder`, when they run."""
    if not interventions_on():
        return {}
    return {
        "interventions_table": f"{folder}/interventions.csv",
        "interventions_summary": f"{folder}/interventions.json",
    }


def interventions_params():
    """The interventions' settings (with the shift settings their domain AUC and OOD percentile use), or None when
    they are off (no rerun when they change)."""
    if not interventions_on():
        return None
    return {
        "scale_tolerance": VALIDITY["interventions"].get("scale_tolerance"),
        "shift": shift_settings(),
    }


def shift_params():
    """The shift diagnostics' settings, or None when they are off (no rerun when they change)."""
    return shift_settings() if validity_on("shift") else None


def train_embeddings_output():
    """The training sample's embeddings (written by the test split's evaluate job) when a diagnostic reads them:
    the shift diagnostics or the interventions."""
    if validity_on("shift") or interventions_on():
        return {"train_embeddings": f"{RUN}/train_embeddings.npz"}
    return {}


def gradcam_params():
    """Grad-CAM's settings (images per gallery, top losses), or None when it is off (no rerun when they change)."""
    if not validity_on("gradcam"):
        return None
    return {"images": VALIDITY["gradcam"]["images"], "top_losses": config["top_losses"]}


def label_audit_outputs():
    """The label audit's files (written by the ensemble job of each split and dataset) when it is on."""
    if not validity_on("label_audit"):
        return {}
    folder = f"{ROOT}/splits/{{split}}/validity/{{dataset}}"
    return {
        "label_table": f"{folder}/label_issues.csv",
        "label_summary": f"{folder}/label_audit.json",
        "label_gallery": directory(f"{folder}/label_issues"),
    }


def label_audit_params():
    """The label audit's settings, or None when it is off (no rerun when they change)."""
    if not validity_on("label_audit"):
        return None
    return {key: VALIDITY["label_audit"][key] for key in ("filter_by", "gallery")}
