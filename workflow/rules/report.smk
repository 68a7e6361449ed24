rule report_html:
    input:
        split=expand("results/splits/{split}/split.csv", split=SPLITS),
        external=expand("results/data/external/{name}.csv", name=EXTERNAL),
        external_classes=expand("results/data/external/{name}.json", name=EXTERNAL),
        weights=reference_weights_file(),
        audit=expand(
            "results/splits/{split}/audit/{file}",
            split=SPLITS,
            file=["leakage.csv", "leakage.json", "pairs"],
        ),
        summary=every(
            f"{ROOT}/summary/{{file}}",
            file=[
                "metrics.csv",
                "external.csv",
                "seeds.csv",
                "robustness.json",
                "agreement.csv",
                "disagreement.csv",
                "robustness",
            ],
        ),
        ensemble=every(
            f"{ROOT}/splits/{{split}}/ensemble/{{dataset}}/metrics.json",
            split=SPLITS,
            dataset=DATASETS,
        ),
        training=every(
            runs("{file}", file=["history.csv", "train.json", "loss_curves.png"])
        ),
        datasets=every(
            runs(
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
            )
        ),
        validity=every(
            f"{ROOT}/summary/{{file}}",
            file=["validity.csv", "image_shift.csv", "label_audit.csv"],
        ),
        diagnostics=every(
            validity_files("image_shift")
            + validity_files("label_audit")
            + validity_files("gradcam")
            + validity_files("shift")
            + validity_figures()
        ),
        variants=variants_outputs(),
        claims=claims_outputs(),
        interventions=interventions_outputs(),
        templates=[
            "templates/report.html.j2",
            "templates/base.html.j2",
            "templates/partials/claims.html.j2",
            "templates/partials/checklist.html.j2",
            "templates/partials/validity.html.j2",
            "templates/partials/interventions.html.j2",
            "templates/partials/variants.html.j2",
            "templates/partials/explore.js",
            "templates/partials/explore.css",
            "templates/style.css",
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
        variants=VARIANTS,
        reference=REFERENCE,
        document="report",
    script:
        "../scripts/render_html.py"


rule summary_html:
    input:
        split=expand("results/splits/{split}/split.csv", split=SPLITS),
        external=expand("results/data/external/{name}.csv", name=EXTERNAL),
        external_classes=expand("results/data/external/{name}.json", name=EXTERNAL),
        weights=reference_weights_file(),
        audit=expand("results/splits/{split}/audit/leakage.json", split=SPLITS),
        summary=every(
            f"{ROOT}/summary/{{file}}",
            file=[
                "metrics.csv",
                "external.csv",
                "curves.png",
                "confusion_test.png",
                "robustness.json",
                "robustness",
                "validity.csv",
            ],
        ),
        ensemble=every(
            f"{ROOT}/splits/{{split}}/ensemble/test/metrics.json",
            split=SPLITS,
        ),
        training=every(runs("train.json")),
        variants=variants_outputs(),
        claims=claims_outputs(),
        interventions=interventions_outputs(),
        templates=[
            "templates/summary.html.j2",
            "templates/base.html.j2",
            "templates/style.css",
        ],
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
        variants=VARIANTS,
        reference=REFERENCE,
        document="summary",
    script:
        "../scripts/render_html.py"


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
