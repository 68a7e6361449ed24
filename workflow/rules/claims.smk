# The paper's claims (config key `claims`) judged against the runs, the deviations from its recipe, the same-seed
# reproducibility check (`reproducibility_check`) and the CLAIM 2024 reviewer checklist (docs/claims.md). With
# variants, only the reference variant's claims, checklist and reproducibility check are requested.


rule reproducibility_train:
    input:
        split="results/splits/{split}/split.csv",
        weights=weights_file,
        audit="results/splits/{split}/audit/split_leakage.json",
        cache=cache_input,
    output:
        model=f"{REPRO}/seed{{seed}}/model.pkl",
        weights=f"{REPRO}/seed{{seed}}/model.safetensors",
        spec=f"{REPRO}/seed{{seed}}/model.json",
        history=f"{REPRO}/seed{{seed}}/history.csv",
        info=f"{REPRO}/seed{{seed}}/train.json",
    log:
        f"{ROOT}/logs/reproducibility_train_split{{split}}_seed{{seed}}.log",
    benchmark:
        f"{ROOT}/benchmarks/reproducibility_train_split{{split}}_seed{{seed}}.tsv"
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


rule reproducibility:
    input:
        model=f"{REPRO}/seed{SEEDS[0]}/model.pkl",
        original_model=f"{ROOT}/splits/{{split}}/seeds/{SEEDS[0]}/model.pkl",
        original_predictions=f"{ROOT}/splits/{{split}}/seeds/{SEEDS[0]}/test/predictions.csv",
        split="results/splits/{split}/split.csv",
    output:
        predictions=f"{REPRO}/seed{SEEDS[0]}/test/predictions.csv",
        summary=f"{REPRO}/reproducibility.json",
    log:
        f"{ROOT}/logs/reproducibility_split{{split}}.log",
    benchmark:
        f"{ROOT}/benchmarks/reproducibility_split{{split}}.tsv"
    conda:
        "../envs/leukoreport.yaml"
    threads: 2
    resources:
        mem_mb=3000,
        runtime=30,
    params:
        batch_size=config["eval_batch_size"],
        device=config["device"],
        tta=lambda wc: recipe(wc)["tta"],
        seed=SEEDS[0],
        split_seed=lambda wc: int(wc.split),
    script:
        "../scripts/reproducibility.py"


rule checklist:
    output:
        f"{ROOT}/summary/checklist.csv",
    log:
        f"{ROOT}/logs/checklist.log",
    benchmark:
        f"{ROOT}/benchmarks/checklist.tsv"
    conda:
        "../envs/leukoreport.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        config=recipe,
    script:
        "../scripts/checklist.py"


if config["claims"]:

    rule claims:
        input:
            claims=config["claims"],
            train=runs("train.json"),
            history=runs("history.csv"),
            metrics=runs("{dataset}/metrics.json", dataset=DATASETS),
            validity=(
                f"{ROOT}/summary/validity.csv"
                if VALIDITY["domain_classifier"]["enabled"]
                else []
            ),
            reproducibility=reproducibility_files(),
        output:
            claims=f"{ROOT}/summary/claims.json",
            table=f"{ROOT}/summary/claims.csv",
            deviations=f"{ROOT}/summary/deviations.csv",
        log:
            f"{ROOT}/logs/claims.log",
        benchmark:
            f"{ROOT}/benchmarks/claims.tsv"
        conda:
            "../envs/leukoreport.yaml"
        threads: 1
        resources:
            mem_mb=1000,
            runtime=10,
        params:
            root=results_root,
            config=recipe,
            splits=SPLITS,
            seeds=SEEDS,
            datasets=DATASETS,
        script:
            "../scripts/claims.py"
