rule report_html:
    input:
        split="results/data/split.csv",
        external=expand("results/data/external/{name}.csv", name=EXTERNAL),
        weights="results/weights/resnet18.json",
        audit=[
            "results/audit/leakage.csv",
            "results/audit/leakage.json",
            "results/audit/pairs",
        ],
        summary=[
            "results/summary/metrics.csv",
            "results/summary/external.csv",
        ],
        training=expand(
            "results/seeds/{seed}/{file}",
            seed=SEEDS,
            file=["history.csv", "train.json", "loss_curves.png"],
        ),
        datasets=expand(
            "results/seeds/{seed}/{dataset}/{file}",
            seed=SEEDS,
            dataset=DATASETS,
            file=[
                "predictions.csv",
                "metrics.json",
                "confusion.png",
                "per_class.png",
                "reliability.png",
                "top_losses.png",
                "errors",
            ],
        ),
        templates=["templates/report.html.j2", "templates/report.css"],
    output:
        "results/report/report.html",
    params:
        config=config,
        seeds=SEEDS,
        datasets=DATASETS,
    conda:
        "../envs/leukoreport.yaml"
    log:
        "results/logs/report_html.log",
    benchmark:
        "results/benchmarks/report_html.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/report_html.py"


rule summary_html:
    input:
        split="results/data/split.csv",
        external=expand("results/data/external/{name}.csv", name=EXTERNAL),
        weights="results/weights/resnet18.json",
        audit="results/audit/leakage.json",
        summary=[
            "results/summary/metrics.csv",
            "results/summary/external.csv",
            "results/summary/curves.png",
            "results/summary/confusion_test.png",
        ],
        training=expand("results/seeds/{seed}/train.json", seed=SEEDS),
        templates=["templates/summary.html.j2", "templates/summary.css"],
    output:
        "results/report/summary.html",
    params:
        config=config,
        seeds=SEEDS,
        datasets=DATASETS,
    conda:
        "../envs/leukoreport.yaml"
    log:
        "results/logs/summary_html.log",
    benchmark:
        "results/benchmarks/summary_html.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/summary_html.py"


rule report_pdf:
    input:
        "results/report/{doc}.html",
    output:
        "results/report/{doc}.pdf",
    conda:
        "../envs/leukoreport.yaml"
    log:
        "results/logs/{doc}_pdf.log",
    benchmark:
        "results/benchmarks/{doc}_pdf.tsv"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=10,
    script:
        "../scripts/report_pdf.py"
