rule summarize:
    input:
        expand(
            "results/seeds/{seed}/{dataset}/metrics.json",
            seed=SEEDS,
            dataset=DATASETS,
        ),
    output:
        metrics="results/summary/metrics.csv",
        external="results/summary/external.csv",
    conda:
        "../envs/leukoreport.yaml"
    log:
        "results/logs/summarize.log",
    benchmark:
        "results/benchmarks/summarize.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/summarize.py"


rule plot_summary:
    input:
        histories=expand("results/seeds/{seed}/history.csv", seed=SEEDS),
        metrics=expand("results/seeds/{seed}/test/metrics.json", seed=SEEDS),
    output:
        curves="results/summary/curves.png",
        confusion="results/summary/confusion_test.png",
    params:
        seeds=SEEDS,
    conda:
        "../envs/leukoreport.yaml"
    log:
        "results/logs/plot_summary.log",
    benchmark:
        "results/benchmarks/plot_summary.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/plot_summary.py"
