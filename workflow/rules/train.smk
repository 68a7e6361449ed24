rule weights:
    output:
        "results/weights/resnet18.json",
    params:
        pretrained=config["pretrained"],
        download=config["download_weights"],
    conda:
        "../envs/leukoreport.yaml"
    log:
        "results/logs/weights.log",
    benchmark:
        "results/benchmarks/weights.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/weights.py"


rule train:
    input:
        split="results/data/split.csv",
        weights="results/weights/resnet18.json",
        audit="results/audit/leakage.json",
    output:
        model="results/seeds/{seed}/model.pkl",
        history="results/seeds/{seed}/history.csv",
        info="results/seeds/{seed}/train.json",
    params:
        train=train_params(),
        split_seed=config["split_seed"],
    conda:
        "../envs/leukoreport.yaml"
    log:
        "results/logs/train_seed{seed}.log",
    benchmark:
        "results/benchmarks/train_seed{seed}.tsv"
    threads: config["train_threads"]
    resources:
        mem_mb=config["train_mem_mb"],
        runtime=config["train_runtime_min"],
    script:
        "../scripts/train.py"
