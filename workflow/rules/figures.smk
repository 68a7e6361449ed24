rule plot_training:
    input:
        history=f"{RUN}/history.csv",
        info=f"{RUN}/train.json",
    output:
        report(
            f"{RUN}/loss_curves.png",
            caption="../report/loss_curves.rst",
            category="Training",
            labels={
                "split seed": "{split}",
                "seed": "{seed}",
                "figure": "loss curves",
            },
        ),
    log:
        f"{ROOT}/logs/plot_training_split{{split}}_seed{{seed}}.log",
    benchmark:
        f"{ROOT}/benchmarks/plot_training_split{{split}}_seed{{seed}}.tsv"
    conda:
        "../envs/leukoreport.yaml"
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
        confusion=report(
            f"{RUN}/{{dataset}}/confusion.png",
            caption="../report/confusion.rst",
            category="Evaluation",
            subcategory="{dataset}",
            labels={
                "split seed": "{split}",
                "seed": "{seed}",
                "figure": "confusion matrix",
            },
        ),
        per_class=report(
            f"{RUN}/{{dataset}}/per_class.png",
            caption="../report/per_class.rst",
            category="Evaluation",
            subcategory="{dataset}",
            labels={
                "split seed": "{split}",
                "seed": "{seed}",
                "figure": "per-class scores",
            },
        ),
        reliability=report(
            f"{RUN}/{{dataset}}/reliability.png",
            caption="../report/reliability.rst",
            category="Evaluation",
            subcategory="{dataset}",
            labels={
                "split seed": "{split}",
                "seed": "{seed}",
                "figure": "reliability",
            },
        ),
        top_losses=report(
            f"{RUN}/{{dataset}}/top_losses.png",
            caption="../report/top_losses.rst",
            category="Evaluation",
            subcategory="{dataset}",
            labels={"split seed": "{split}", "seed": "{seed}", "figure": "top losses"},
        ),
        errors=directory(f"{RUN}/{{dataset}}/errors"),
    log:
        f"{ROOT}/logs/plot_dataset_split{{split}}_seed{{seed}}_{{dataset}}.log",
    benchmark:
        f"{ROOT}/benchmarks/plot_dataset_split{{split}}_seed{{seed}}_{{dataset}}.tsv"
    conda:
        "../envs/leukoreport.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        top_losses=config["top_losses"],
        limit=config["report_limits"]["errors"],
    script:
        "../scripts/plot_dataset.py"
