rule split:
    input:
        config["data_dir"],
    output:
        "results/splits/{split}/split.csv",
    log:
        "results/logs/split{split}.log",
    benchmark:
        "results/benchmarks/split{split}.tsv"
    conda:
        "../envs/leukoreport.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        seed=lambda wc: int(wc.split),
        fractions=config["split_fractions"],
        max_per_class=config["max_per_class"],
    script:
        "../scripts/split.py"


rule cache:
    input:
        "results/splits/{split}/split.csv",
    output:
        "results/splits/{split}/cache{size}.bin",
    log:
        "results/logs/cache_split{split}_{size}.log",
    benchmark:
        "results/benchmarks/cache_split{split}_{size}.tsv"
    conda:
        "../envs/leukoreport.yaml"
    threads: config["train_threads"]
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/cache.py"


rule external:
    input:
        images=lambda wc: EXTERNAL[wc.name],
        split=f"results/splits/{SPLITS[0]}/split.csv",
    output:
        images="results/data/external/{name}.csv",
        classes="results/data/external/{name}.json",
    log:
        "results/logs/external_{name}.log",
    benchmark:
        "results/benchmarks/external_{name}.tsv"
    conda:
        "../envs/leukoreport.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        aliases=config["class_aliases"],
    script:
        "../scripts/external.py"
