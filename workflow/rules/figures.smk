rule plot_training:
    input:
        history="results/seeds/{seed}/history.csv",
        info="results/seeds/{seed}/train.json",
    output:
        "results/seeds/{seed}/loss_curves.png",
    conda:
        "../envs/leukoreport.yaml"
    log:
        "results/logs/plot_training_seed{seed}.log",
    benchmark:
        "results/benchmarks/plot_training_seed{seed}.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/plot_training.py"


rule plot_dataset:
    input:
        predictions="results/seeds/{seed}/{dataset}/predictions.csv",
        metrics="results/seeds/{seed}/{dataset}/metrics.json",
    output:
        confusion="results/seeds/{seed}/{dataset}/confusion.png",
        per_class="results/seeds/{seed}/{dataset}/per_class.png",
        reliability="results/seeds/{seed}/{dataset}/reliability.png",
        top_losses="results/seeds/{seed}/{dataset}/top_losses.png",
        errors=directory("results/seeds/{seed}/{dataset}/errors"),
    params:
        top_losses=config["top_losses"],
    conda:
        "../envs/leukoreport.yaml"
    log:
        "results/logs/plot_dataset_seed{seed}_{dataset}.log",
    benchmark:
        "results/benchmarks/plot_dataset_seed{seed}_{dataset}.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/plot_dataset.py"
