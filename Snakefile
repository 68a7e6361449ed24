# leukoreport: rerun the two-phase ResNet18 leukocyte classifier for several seeds and report it.
# Full run: `snakemake --cores 4`; tiny run: `snakemake --cores 2 --configfile config/smoke.yaml`.


# A --configfile replaces the default config as a whole (Snakemake would otherwise merge nested keys
# such as `external` with the defaults).
if not workflow.config_settings.configfiles:

    configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/audit.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/summary.smk"
include: "workflow/rules/validity.smk"
include: "workflow/rules/interventions.smk"
include: "workflow/rules/variants.smk"
include: "workflow/rules/claims.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/compare.smk"


rule all:
    default_target: True
    input:
        "results/report/report.html",
        "results/report/report.pdf",
        "results/report/summary.pdf",
        claims_outputs(),
