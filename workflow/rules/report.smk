rule report_html:
    input:
        split=expand("results/splits/{split}/split.csv", split=SPLITS),
        external=expand("results/data/external/{name}.csv", name=EXTERNAL),
        weights="results/weights/resnet18.json",
        audit=expand(
            "results/splits/{split}/audit/{file}",
            split=SPLITS,
            file=["leakage.csv", "leakage.json", "pairs"],
        ),
        summary=[
            "results/summary/metrics.csv",
            "results/summary/external.csv",
            "results/summary/seeds.csv",
            "results/summary/robustness.json",
            "results/summary/agreement.csv",
            "results/summary/disagreement.csv",
            "results/summary/robustness",
        ],
        ensemble=expand(
            "results/splits/{split}/ensemble/{dataset}/metrics.json",
            split=SPLITS,
            dataset=DATASETS,
        ),
        training=runs("{file}", file=["history.csv", "train.json", "loss_curves.png"]),
        datasets=runs(
            "{dataset}/{file}",
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
        validity=[
            "results/summary/validity.csv",
            "results/summary/image_shift.csv",
            "results/summary/label_audit.csv",
        ],
        diagnostics=validity_files("image_shift")
        + validity_files("label_audit")
        + validity_files("gradcam")
        + validity_files("shift")
        + validity_figures(),
        templates=[
            "templates/report.html.j2",
            "templates/validity.html.j2",
            "templates/report.css",
        ],
    output:
        "results/report/report.html",
    log:
        "results/logs/report_html.log",
    benchmark:
        "results/benchmarks/report_html.tsv"
    conda:
        "../envs/leukoreport.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        config=config,
        splits=SPLITS,
        seeds=SEEDS,
        datasets=DATASETS,
    script:
        "../scripts/report_html.py"


rule summary_html:
    input:
        split=expand("results/splits/{split}/split.csv", split=SPLITS),
        external=expand("results/data/external/{name}.csv", name=EXTERNAL),
        weights="results/weights/resnet18.json",
        audit=expand("results/splits/{split}/audit/leakage.json", split=SPLITS),
        summary=[
            "results/summary/metrics.csv",
            "results/summary/external.csv",
            "results/summary/curves.png",
            "results/summary/confusion_test.png",
            "results/summary/robustness.json",
            "results/summary/robustness",
        ],
        ensemble=expand(
            "results/splits/{split}/ensemble/test/metrics.json",
            split=SPLITS,
        ),
        training=runs("train.json"),
        validity="results/summary/validity.csv",
        templates=["templates/summary.html.j2", "templates/summary.css"],
    output:
        "results/report/summary.html",
    log:
        "results/logs/summary_html.log",
    benchmark:
        "results/benchmarks/summary_html.tsv"
    conda:
        "../envs/leukoreport.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        config=config,
        splits=SPLITS,
        seeds=SEEDS,
        datasets=DATASETS,
    script:
        "../scripts/summary_html.py"


rule report_pdf:
    input:
        "results/report/{doc}.html",
    output:
        report(
            "results/report/{doc}.pdf",
            caption="../report/reports.rst",
            category="Reports",
            labels={"document": "{doc}"},
        ),
    log:
        "results/logs/{doc}_pdf.log",
    benchmark:
        "results/benchmarks/{doc}_pdf.tsv"
    conda:
        "../envs/leukoreport.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=10,
    script:
        "../scripts/report_pdf.py"
