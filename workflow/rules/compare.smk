rule compare:
    input:
        "results/summary/metrics.csv",
        templates=["templates/compare.html.j2", "templates/compare.css"],
    output:
        json="results/compare/compare.json",
        html="results/compare/compare.html",
        pdf="results/compare/compare.pdf",
    log:
        "results/logs/compare.log",
    benchmark:
        "results/benchmarks/compare.tsv"
    conda:
        "../envs/leukoreport.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        other=config["compare_with"],
        resamples=config["bootstrap_resamples"],
        seed=config["bootstrap_seed"],
        confidence=config["confidence_level"],
    script:
        "../scripts/compare.py"
