rule evaluate:
    input:
        model=f"{RUN}/model.pkl",
        info=f"{RUN}/train.json",
        images=dataset_images,
        split="results/splits/{split}/split.csv",
    output:
        predictions=f"{RUN}/{{dataset}}/predictions.csv",
        embeddings=f"{RUN}/{{dataset}}/embeddings.npz",
        metrics=f"{RUN}/{{dataset}}/metrics.json",
    log:
        f"{ROOT}/logs/evaluate_split{{split}}_seed{{seed}}_{{dataset}}.log",
    benchmark:
        f"{ROOT}/benchmarks/evaluate_split{{split}}_seed{{seed}}_{{dataset}}.tsv"
    conda:
        "../envs/leukoreport.yaml"
    threads: 2
    resources:
        mem_mb=3000,
        runtime=30,
    params:
        batch_size=config["eval_batch_size"],
        device=config["device"],
        uncertainty=uncertainty_params(),
        tta=lambda wc: recipe(wc)["tta"],
    script:
        "../scripts/evaluate.py"
