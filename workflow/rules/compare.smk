rule compare:
    input:
        f"{ROOT}/summary/metrics.csv",
        templates=["templates/compare.html.j2", "templates/compare.css"],
    output:
        json=f"{ROOT}/compare/compare.json",
        html=f"{ROOT}/compare/compare.html",
        pdf=f"{ROOT}/compare/compare.pdf",
    log:
        f"{ROOT}/logs/compare.log",
    benchmark:
        f"{ROOT}/benchmarks/compare.tsv"
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
        bins=config["calibration_bins"],
    script:
        "../scripts/compare.py"
