rule report_html:
    input:
        split="results/data/split.csv",
        external=expand("results/data/external/{name}.csv", name=EXTERNAL),
        weights="results/weights/resnet18.json",
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
                "errors",
            ],
        ),
        templates="templates/report.html.j2",
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


rule report_pdf:
    input:
        "results/report/report.html",
    output:
        "results/report/report.pdf",
    conda:
        "../envs/leukoreport.yaml"
    log:
        "results/logs/report_pdf.log",
    benchmark:
        "results/benchmarks/report_pdf.tsv"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=10,
    script:
        "../scripts/report_pdf.py"
