rule leakage:
    input:
        split="results/splits/{split}/split.csv",
        external=expand("results/data/external/{name}.csv", name=EXTERNAL),
    output:
        hashes="results/splits/{split}/audit/hashes.csv",
        pairs="results/splits/{split}/audit/leakage.csv",
        summary="results/splits/{split}/audit/leakage.json",
    log:
        "results/logs/leakage_split{split}.log",
    benchmark:
        "results/benchmarks/leakage_split{split}.tsv"
    conda:
        "../envs/leukoreport.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        names=list(EXTERNAL),
        action=config["leakage"],
        max_distance=config["leakage_max_distance"],
        hash_size=config["leakage_hash_size"],
    script:
        "../scripts/leakage.py"


rule plot_leakage:
    input:
        pairs="results/splits/{split}/audit/leakage.csv",
        summary="results/splits/{split}/audit/leakage.json",
    output:
        directory("results/splits/{split}/audit/pairs"),
    log:
        "results/logs/plot_leakage_split{split}.log",
    benchmark:
        "results/benchmarks/plot_leakage_split{split}.tsv"
    conda:
        "../envs/leukoreport.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        limit=config["report_limits"]["pairs"],
    script:
        "../scripts/plot_leakage.py"
