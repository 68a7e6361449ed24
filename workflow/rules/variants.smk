# Recipe variants (config key `variants`): every variant against the reference, per dataset and metric.


if VARIANTS:

    rule variants:
        input:
            metrics=every(f"{ROOT}/summary/metrics.csv"),
            predictions=every(runs("{dataset}/predictions.csv", dataset=DATASETS)),
        output:
            json="results/summary/variants.json",
            summary="results/summary/variants.csv",
            comparisons="results/summary/variant_comparisons.csv",
        log:
            "results/logs/variants.log",
        benchmark:
            "results/benchmarks/variants.tsv"
        conda:
            "../envs/leukoreport.yaml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=30,
        params:
            variants=list(VARIANTS),
            reference=REFERENCE,
            datasets=DATASETS,
            resamples=config["bootstrap_resamples"],
            seed=config["bootstrap_seed"],
            confidence=config["confidence_level"],
            bins=config["calibration_bins"],
        script:
            "../scripts/variants.py"

    rule plot_variants:
        input:
            "results/summary/variants.json",
        output:
            directory("results/summary/variants"),
        log:
            "results/logs/plot_variants.log",
        benchmark:
            "results/benchmarks/plot_variants.tsv"
        conda:
            "../envs/leukoreport.yaml"
        threads: 1
        resources:
            mem_mb=1000,
            runtime=10,
        script:
            "../scripts/plot_variants.py"
