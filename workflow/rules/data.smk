rule split:
    input:
        config["data_dir"],
    output:
        "results/data/split.csv",
    params:
        seed=config["split_seed"],
        fractions=config["split_fractions"],
        max_per_class=config["max_per_class"],
    conda:
        "../envs/leukoreport.yaml"
    log:
        "results/logs/split.log",
    benchmark:
        "results/benchmarks/split.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/split.py"


rule external:
    input:
        images=lambda wc: EXTERNAL[wc.name],
        split="results/data/split.csv",
    output:
        "results/data/external/{name}.csv",
    conda:
        "../envs/leukoreport.yaml"
    log:
        "results/logs/external_{name}.log",
    benchmark:
        "results/benchmarks/external_{name}.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/external.py"
