rule plot_training:
    input:
        history=f"{RUN}/history.csv",
        info=f"{RUN}/train.json",
    output:
        f"{RUN}/loss_curves.png",
    conda:
        "../envs/leukoreport.yaml"
    log:
        "results/logs/plot_training_split{split}_seed{seed}.log",
    benchmark:
        "results/benchmarks/plot_training_split{split}_seed{seed}.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/plot_training.py"


rule plot_dataset:
    input:
        predictions=f"{RUN}/{{dataset}}/predictions.csv",
        metrics=f"{RUN}/{{dataset}}/metrics.json",
    output:
        confusion=f"{RUN}/{{dataset}}/confusion.png",
        per_class=f"{RUN}/{{dataset}}/per_class.png",
        reliability=f"{RUN}/{{dataset}}/reliability.png",
        top_losses=f"{RUN}/{{dataset}}/top_losses.png",
        errors=directory(f"{RUN}/{{dataset}}/errors"),
    params:
        top_losses=config["top_losses"],
    conda:
        "../envs/leukoreport.yaml"
    log:
        "results/logs/plot_dataset_split{split}_seed{seed}_{dataset}.log",
    benchmark:
        "results/benchmarks/plot_dataset_split{split}_seed{seed}_{dataset}.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/plot_dataset.py"
