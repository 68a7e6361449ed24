# Interventions at evaluation (config key `validity.interventions`, issue 24): each external set of each run
# predicted again after colour normalisation (Reinhard, Macenko), scale matching, AdaBN and all three together,
# with the reference statistics fitted once per split on training images only. The predictions are made by the set's
# evaluate job (evaluate.smk), which has the model loaded; these rules prepare what it reads.
import re


rule normalisation_reference:
    input:
        split="results/splits/{split}/split.csv",
    output:
        "results/splits/{split}/validity/normalisation_reference.json",
    log:
        "results/logs/normalisation_reference_split{split}.log",
    benchmark:
        "results/benchmarks/normalisation_reference_split{split}.tsv"
    conda:
        "../envs/leukoreport.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        sample=VALIDITY.get("interventions", {}).get("reference_sample"),
        seed=lambda wc: int(wc.split),
    script:
        "../scripts/normalisation_reference.py"


# The transformed images depend only on the split's reference and the set's images: written once per split and
# external set here, and read by every run (seed, variant) below. Each image is first downsampled (Lanczos, aspect
# ratio kept, never upsampled) so that its shorter side is `work_side` pixels: this changes nothing the model sees
# beyond resampling, because the learner's Resize(size) crops and resizes every image anyway (work_side >= 2 x size).
rule intervention_images:
    input:
        reference="results/splits/{split}/validity/normalisation_reference.json",
        images="results/data/external/{name}.csv",
    output:
        folder=directory("results/splits/{split}/validity/{name}/intervention_images"),
        summary="results/splits/{split}/validity/{name}/intervention_images.json",
    log:
        "results/logs/intervention_images_split{split}_{name}.log",
    benchmark:
        "results/benchmarks/intervention_images_split{split}_{name}.tsv"
    wildcard_constraints:
        name="|".join(re.escape(name) for name in EXTERNAL) or "(?!)",
    conda:
        "../envs/leukoreport.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=30,
    params:
        name=lambda wc: wc.name,
        work_side=work_side(),
        scale_tolerance=VALIDITY.get("interventions", {}).get("scale_tolerance"),
    script:
        "../scripts/intervention_images.py"
