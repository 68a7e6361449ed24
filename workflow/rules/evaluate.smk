rule evaluate:
    input:
        model="results/seeds/{seed}/model.pkl",
        images=dataset_images,
    output:
        predictions="results/seeds/{seed}/{dataset}/predictions.csv",
        metrics="results/seeds/{seed}/{dataset}/metrics.json",
    params:
        batch_size=config["eval_batch_size"],
        uncertainty=uncertainty_params(),
    conda:
        "../envs/leukoreport.yaml"
    log:
        "results/logs/evaluate_seed{seed}_{dataset}.log",
    benchmark:
        "results/benchmarks/evaluate_seed{seed}_{dataset}.tsv"
    threads: 2
    resources:
        mem_mb=3000,
        runtime=30,
    script:
        "../scripts/evaluate.py"
