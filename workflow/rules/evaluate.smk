# One job per run and dataset: predictions, embeddings and metrics, plus the work that needs the loaded model or the
# embeddings just computed: Grad-CAM, the shift diagnostics, for the test split the training sample's embeddings, and
# for an external set the interventions at evaluation (issue 24), each timed into timing.json
# (scripts/validity_cost.py charges those seconds to the diagnostics, or to the interventions).
import re


# External sets; the test split is rule evaluate_test below.
rule evaluate:
    input:
        **external_evaluation_inputs(),
        model=f"{RUN}/model.pkl",
        info=f"{RUN}/train.json",
        images=dataset_images,
        split="results/splits/{split}/split.csv",
        reference=evaluation_reference,
    output:
        **evaluate_outputs(f"{RUN}/{{dataset}}"),
        **interventions_files(f"{RUN}/{{dataset}}"),
    log:
        f"{ROOT}/logs/evaluate_split{{split}}_seed{{seed}}_{{dataset}}.log",
    benchmark:
        f"{ROOT}/benchmarks/evaluate_split{{split}}_seed{{seed}}_{{dataset}}.tsv"
    wildcard_constraints:
        dataset="|".join(re.escape(name) for name in EXTERNAL) or "(?!)",
    conda:
        "../envs/leukoreport.yaml"
    threads: 2
    resources:
        mem_mb=3000,
        runtime=30,
    params:
        dataset=lambda wc: wc.dataset,
        batch_size=config["eval_batch_size"],
        device=config["device"],
        uncertainty=uncertainty_params(),
        tta=lambda wc: recipe(wc)["tta"],
        evaluation=evaluation_options,
        gradcam=gradcam_params(),
        shift=shift_params(),
        interventions=interventions_params(),
    script:
        "../scripts/evaluate.py"


# The test split: the same job, which also embeds the training sample (formerly rule embed_train).
use rule evaluate as evaluate_test with:
    input:
        model=f"{RUN}/model.pkl",
        info=f"{RUN}/train.json",
        images="results/splits/{split}/split.csv",
        split="results/splits/{split}/split.csv",
        reference=evaluation_reference,
    output:
        **evaluate_outputs(f"{RUN}/test"),
        **train_embeddings_output(),
    log:
        f"{ROOT}/logs/evaluate_split{{split}}_seed{{seed}}_test.log",
    benchmark:
        f"{ROOT}/benchmarks/evaluate_split{{split}}_seed{{seed}}_test.tsv"
    params:
        dataset="test",
        train_sample=VALIDITY["train_sample"] if train_embeddings_output() else None,
