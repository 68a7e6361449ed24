rule summarize:
    input:
        runs("{dataset}/metrics.json", dataset=DATASETS),
    output:
        metrics=f"{ROOT}/summary/metrics.csv",
        external=f"{ROOT}/summary/external.csv",
    log:
        f"{ROOT}/logs/summarize.log",
    benchmark:
        f"{ROOT}/benchmarks/summarize.tsv"
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
            f"{ROOT}/summary/curves.png",
            caption="../report/summary_figures.rst",
            category="Summary",
            labels={"figure": "training curves, all runs"},
        ),
        confusion=report(
            f"{ROOT}/summary/confusion_test.png",
            caption="../report/summary_figures.rst",
            category="Summary",
            labels={"figure": "test confusion, summed over runs"},
        ),
    log:
        f"{ROOT}/logs/plot_summary.log",
    benchmark:
        f"{ROOT}/benchmarks/plot_summary.tsv"
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


# One job per split and dataset: the seed ensemble and the label audit of its probabilities, the audit's seconds
# timed into timing.json (scripts/validity_cost.py charges them to the diagnostics).
rule ensemble:
    input:
        predictions=expand(
            f"{ROOT}/splits/{{split}}/seeds/{{seed}}/{{dataset}}/predictions.csv",
            seed=SEEDS,
            allow_missing=True,
        ),
        split="results/splits/{split}/split.csv",
    output:
        **label_audit_outputs(),
        predictions=f"{ROOT}/splits/{{split}}/ensemble/{{dataset}}/predictions.csv",
        metrics=f"{ROOT}/splits/{{split}}/ensemble/{{dataset}}/metrics.json",
        timing=f"{ROOT}/splits/{{split}}/ensemble/{{dataset}}/timing.json",
    log:
        f"{ROOT}/logs/ensemble_split{{split}}_{{dataset}}.log",
    benchmark:
        f"{ROOT}/benchmarks/ensemble_split{{split}}_{{dataset}}.tsv"
    conda:
        "../envs/leukoreport.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        seeds=SEEDS,
        uncertainty=uncertainty_params(),
        label_audit=label_audit_params(),
    script:
        "../scripts/ensemble.py"


rule robustness:
    input:
        metrics=runs("{dataset}/metrics.json", dataset=DATASETS),
        predictions=runs("{dataset}/predictions.csv", dataset=DATASETS),
        ensemble=expand(
            f"{ROOT}/splits/{{split}}/ensemble/{{dataset}}/metrics.json",
            split=SPLITS,
            dataset=DATASETS,
            allow_missing=True,
        ),
    output:
        seeds=f"{ROOT}/summary/seeds.csv",
        robustness=f"{ROOT}/summary/robustness.json",
        agreement=f"{ROOT}/summary/agreement.csv",
        disagreement=f"{ROOT}/summary/disagreement.csv",
    log:
        f"{ROOT}/logs/robustness.log",
    benchmark:
        f"{ROOT}/benchmarks/robustness.tsv"
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
        seeds=f"{ROOT}/summary/seeds.csv",
        agreement=f"{ROOT}/summary/agreement.csv",
        robustness=f"{ROOT}/summary/robustness.json",
    output:
        directory(f"{ROOT}/summary/robustness"),
    log:
        f"{ROOT}/logs/plot_robustness.log",
    benchmark:
        f"{ROOT}/benchmarks/plot_robustness.tsv"
    conda:
        "../envs/leukoreport.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        limit=config["report_limits"]["agreement"],
    script:
        "../scripts/plot_robustness.py"


# Interventions at evaluation (config `validity.interventions`): every run's interventions on every external set,
# summarised over runs (leukoreport.stats.interventions).
rule interventions_summary:
    input:
        csv=runs("{dataset}/interventions.csv", dataset=list(EXTERNAL)),
        json=runs("{dataset}/interventions.json", dataset=list(EXTERNAL)),
    output:
        table=f"{ROOT}/summary/interventions.csv",
        summary=f"{ROOT}/summary/interventions.json",
    log:
        f"{ROOT}/logs/interventions_summary.log",
    benchmark:
        f"{ROOT}/benchmarks/interventions_summary.tsv"
    conda:
        "../envs/leukoreport.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        uncertainty=uncertainty_params(),
    script:
        "../scripts/interventions_summary.py"
