rule weights:
    output:
        "results/weights/resnet18.json",
    log:
        "results/logs/weights.log",
    benchmark:
        "results/benchmarks/weights.tsv"
    conda:
        "../envs/leukoreport.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        pretrained=any(cfg["pretrained"] for cfg in recipes()),
        download=config["download_weights"],
    script:
        "../scripts/weights.py"


rule train:
    input:
        split="results/splits/{split}/split.csv",
        weights="results/weights/resnet18.json",
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
