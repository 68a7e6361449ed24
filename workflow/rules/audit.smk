# The leakage audit in two steps: rule `leakage` hashes the split alone (training waits for it, so adding,
# removing or renaming an external set retrains nothing); rule `leakage_external` reuses those hashes, adds the
# external sets and writes the audit the report shows. With `leakage: fail` a duplicate within or across the
# splits stops training, a duplicate involving an external set stops the full audit (hence the report).


rule leakage:
    input:
        split="results/splits/{split}/split.csv",
    output:
        hashes="results/splits/{split}/audit/split_hashes.csv",
        pairs="results/splits/{split}/audit/split_leakage.csv",
        summary="results/splits/{split}/audit/split_leakage.json",
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
        names=[],
        action=config["leakage"],
        max_distance=config["leakage_max_distance"],
        hash_size=config["leakage_hash_size"],
    script:
        "../scripts/leakage.py"


rule leakage_external:
    input:
        split="results/splits/{split}/split.csv",
        split_hashes="results/splits/{split}/audit/split_hashes.csv",
        external=expand("results/data/external/{name}.csv", name=EXTERNAL),
    output:
        hashes="results/splits/{split}/audit/hashes.csv",
        pairs="results/splits/{split}/audit/leakage.csv",
        summary="results/splits/{split}/audit/leakage.json",
    log:
        "results/logs/leakage_external_split{split}.log",
    benchmark:
        "results/benchmarks/leakage_external_split{split}.tsv"
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
