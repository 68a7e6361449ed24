rule summarize:
    input:
        runs("{dataset}/metrics.json", dataset=DATASETS),
    output:
        metrics="results/summary/metrics.csv",
        external="results/summary/external.csv",
    log:
        "results/logs/summarize.log",
    benchmark:
        "results/benchmarks/summarize.tsv"
    conda:
        "../envs/leukoreport.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/summarize.py"


rule plot_summary:
    input:
        histories=runs("history.csv"),
        metrics=runs("test/metrics.json"),
    output:
        curves=report(
            "results/summary/curves.png",
            caption="../report/summary_figures.rst",
            category="Summary",
            labels={"figure": "training curves, all runs"},
        ),
        confusion=report(
            "results/summary/confusion_test.png",
            caption="../report/summary_figures.rst",
            category="Summary",
            labels={"figure": "test confusion, summed over runs"},
        ),
    log:
        "results/logs/plot_summary.log",
    benchmark:
        "results/benchmarks/plot_summary.tsv"
    conda:
        "../envs/leukoreport.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        labels=run_labels(),
    script:
        "../scripts/plot_summary.py"


rule ensemble:
    input:
        predictions=expand(
            "results/splits/{{split}}/seeds/{seed}/{{dataset}}/predictions.csv",
            seed=SEEDS,
        ),
        split="results/splits/{split}/split.csv",
    output:
        predictions="results/splits/{split}/ensemble/{dataset}/predictions.csv",
        metrics="results/splits/{split}/ensemble/{dataset}/metrics.json",
    log:
        "results/logs/ensemble_split{split}_{dataset}.log",
    benchmark:
        "results/benchmarks/ensemble_split{split}_{dataset}.tsv"
    conda:
        "../envs/leukoreport.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        seeds=SEEDS,
        uncertainty=uncertainty_params(),
    script:
        "../scripts/ensemble.py"


rule robustness:
    input:
        metrics=runs("{dataset}/metrics.json", dataset=DATASETS),
        predictions=runs("{dataset}/predictions.csv", dataset=DATASETS),
        ensemble=expand(
            "results/splits/{split}/ensemble/{dataset}/metrics.json",
            split=SPLITS,
            dataset=DATASETS,
        ),
    output:
        seeds="results/summary/seeds.csv",
        robustness="results/summary/robustness.json",
        agreement="results/summary/agreement.csv",
        disagreement="results/summary/disagreement.csv",
    log:
        "results/logs/robustness.log",
    benchmark:
        "results/benchmarks/robustness.tsv"
    conda:
        "../envs/leukoreport.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        confidence=config["confidence_level"],
    script:
        "../scripts/robustness.py"


rule plot_robustness:
    input:
        seeds="results/summary/seeds.csv",
        agreement="results/summary/agreement.csv",
        robustness="results/summary/robustness.json",
    output:
        directory("results/summary/robustness"),
    log:
        "results/logs/plot_robustness.log",
    benchmark:
        "results/benchmarks/plot_robustness.tsv"
    conda:
        "../envs/leukoreport.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/plot_robustness.py"
