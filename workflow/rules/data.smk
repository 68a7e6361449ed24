rule split:
    input:
        config["data_dir"],
    output:
        "results/splits/{split}/split.csv",
    params:
        seed=lambda wc: int(wc.split),
        fractions=config["split_fractions"],
        max_per_class=config["max_per_class"],
    conda:
        "../envs/leukoreport.yaml"
    log:
        "results/logs/split{split}.log",
    benchmark:
        "results/benchmarks/split{split}.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/split.py"


rule external:
    input:
        images=lambda wc: EXTERNAL[wc.name],
        split=f"results/splits/{SPLITS[0]}/split.csv",
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
