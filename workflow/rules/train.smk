# One weights job per architecture (`arch`): torchvision's ImageNet file checked (or downloaded), or random
# initialisation recorded when no variant of that architecture starts from ImageNet weights.
rule weights:
    output:
        "results/weights/{arch}.json",
    log:
        "results/logs/weights_{arch}.log",
    benchmark:
        "results/benchmarks/weights_{arch}.tsv"
    wildcard_constraints:
        arch="resnet18|resnet34|resnet50",
    conda:
        "../envs/leukoreport.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        pretrained=lambda wc: imagenet_needed(wc.arch),
        download=config["download_weights"],
    script:
        "../scripts/weights.py"


rule train:
    input:
        split="results/splits/{split}/split.csv",
        weights=weights_file,
        audit="results/splits/{split}/audit/split_leakage.json",
        cache=cache_input,
    output:
        model=f"{RUN}/model.pkl",
        weights=f"{RUN}/model.safetensors",
        spec=f"{RUN}/model.json",
        history=f"{RUN}/history.csv",
        info=f"{RUN}/train.json",
    log:
        f"{ROOT}/logs/train_split{{split}}_seed{{seed}}.log",
    benchmark:
        f"{ROOT}/benchmarks/train_split{{split}}_seed{{seed}}.tsv"
    wildcard_constraints:
        variant="|".join(TRAINED) or "(?!)",
    conda:
        "../envs/leukoreport.yaml"
    threads: config["train_threads"]
    resources:
        mem_mb=config["train_mem_mb"],
        runtime=config["train_runtime_min"],
        gpu=train_gpus(),
    params:
        train=train_params,
        split_seed=lambda wc: int(wc.split),
    script:
        "../scripts/train.py"


# A variant that differs from an earlier one only in what is applied after training (`evaluation`, `tta`) trains
# nothing: the earlier variant's model files are copied (train.json records `trained_as_variant`).
if SHARED:

    rule reuse_training:
        input:
            model=shared_model("model.pkl"),
            weights=shared_model("model.safetensors"),
            spec=shared_model("model.json"),
            history=shared_model("history.csv"),
            info=shared_model("train.json"),
        output:
            model=f"{RUN}/model.pkl",
            weights=f"{RUN}/model.safetensors",
            spec=f"{RUN}/model.json",
            history=f"{RUN}/history.csv",
            info=f"{RUN}/train.json",
        log:
            f"{ROOT}/logs/reuse_training_split{{split}}_seed{{seed}}.log",
        benchmark:
            f"{ROOT}/benchmarks/reuse_training_split{{split}}_seed{{seed}}.tsv"
        wildcard_constraints:
            variant="|".join(SHARED) or "(?!)",
        conda:
            "../envs/leukoreport.yaml"
        threads: 1
        resources:
            mem_mb=1000,
            runtime=10,
        params:
            source=lambda wc: SHARED[wc.variant],
        script:
            "../scripts/reuse_training.py"
