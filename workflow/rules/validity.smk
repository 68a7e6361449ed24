# External validity (config key `validity`): baselines live in metrics.json; these rules add image-statistic
# shift and draw the embedding diagnostics. The domain classifier and nearest-neighbour OOD scores, Grad-CAM and the
# training sample's embeddings are written by the evaluate jobs (evaluate.smk), the label audit by the ensemble jobs.
import re


rule image_stats_split:
    input:
        images="results/splits/{split}/split.csv",
    output:
        stats=[
            "results/splits/{split}/validity/image_stats/train.csv",
            "results/splits/{split}/validity/image_stats/test.csv",
        ],
        table="results/splits/{split}/validity/test/image_shift.csv",
        figure="results/splits/{split}/validity/test/image_shift.png",
    log:
        "results/logs/image_stats_split{split}.log",
    benchmark:
        "results/benchmarks/image_stats_split{split}.tsv"
    conda:
        "../envs/leukoreport.yaml"
    threads: 2
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        groups=["train", "test"],
        dataset="test",
        max_side=VALIDITY["image_shift"]["max_side"],
    script:
        "../scripts/image_stats.py"


# One job per external set (its statistics and its shift from the training images), so that adding, removing or
# renaming a set runs nothing for the others.
rule image_stats:
    input:
        images="results/data/external/{group}.csv",
        train="results/splits/{split}/validity/image_stats/train.csv",
    output:
        stats=["results/splits/{split}/validity/image_stats/{group}.csv"],
        table="results/splits/{split}/validity/{group}/image_shift.csv",
        figure="results/splits/{split}/validity/{group}/image_shift.png",
    log:
        "results/logs/image_stats_split{split}_{group}.log",
    benchmark:
        "results/benchmarks/image_stats_split{split}_{group}.tsv"
    wildcard_constraints:
        group="|".join(re.escape(name) for name in EXTERNAL) or "(?!)",
    conda:
        "../envs/leukoreport.yaml"
    threads: 2
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        groups=lambda wc: [wc.group],
        dataset=lambda wc: wc.group,
        max_side=VALIDITY["image_shift"]["max_side"],
    script:
        "../scripts/image_stats.py"


rule plot_shift:
    input:
        ood=expand(f"{RUN}/{{dataset}}/ood.csv", dataset=DATASETS, allow_missing=True),
        summary=expand(
            f"{RUN}/{{dataset}}/shift.json", dataset=DATASETS, allow_missing=True
        ),
        curve=expand(
            f"{RUN}/{{dataset}}/risk_coverage.csv",
            dataset=DATASETS,
            allow_missing=True,
        ),
    output:
        risk_coverage=f"{RUN}/validity/risk_coverage.png",
        bands=f"{RUN}/validity/ood_bands.png",
    log:
        f"{ROOT}/logs/plot_shift_split{{split}}_seed{{seed}}.log",
    benchmark:
        f"{ROOT}/benchmarks/plot_shift_split{{split}}_seed{{seed}}.tsv"
    conda:
        "../envs/leukoreport.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        datasets=DATASETS,
        label=lambda wc: variant_label(wc)
        + run_label(int(wc.split), int(wc.seed), len(SPLITS)),
    script:
        "../scripts/plot_shift.py"


rule validity_summary:
    input:
        metrics=runs("{dataset}/metrics.json", dataset=DATASETS),
        shift=validity_files("shift"),
        image_shift=validity_files("image_shift"),
        label_audit=validity_files("label_audit"),
    output:
        validity=f"{ROOT}/summary/validity.csv",
        image_shift=f"{ROOT}/summary/image_shift.csv",
        label_audit=f"{ROOT}/summary/label_audit.csv",
    log:
        f"{ROOT}/logs/validity_summary.log",
    benchmark:
        f"{ROOT}/benchmarks/validity_summary.tsv"
    conda:
        "../envs/leukoreport.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        splits=SPLITS,
        seeds=SEEDS,
        datasets=DATASETS,
        settings=config["validity"],
    script:
        "../scripts/validity_summary.py"
