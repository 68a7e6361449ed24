"""The reviewer checklist: the 44 items of CLAIM 2024 (Checklist for Artificial Intelligence in Medical Imaging,
Tejani et al., Radiology: Artificial Intelligence 2024;6(4):e240300), each with where this run answers it (report
section and results file) or what the authors must state. Topics are our own short wording."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from leukoreport.config.provenance import declared_provenance

__all__ = ["ANSWERED_BY", "CHECKLIST_COLUMNS", "CITATION", "ChecklistItem", "checklist_rows"]

CITATION = "CLAIM 2024: Tejani et al., Radiology: Artificial Intelligence 2024;6(4):e240300"
CHECKLIST_COLUMNS = ["item", "topic", "answered_by", "where"]
ANSWERED_BY = ("this run", "for the authors")
RUN, AUTHORS = ANSWERED_BY


@dataclass(frozen=True)
class ChecklistItem:
    """One checklist row: the item's number, its topic, who answers it and where (or what must be stated)."""

    item: int
    topic: str
    answered_by: str
    where: str


def _authors(item: int, topic: str, what: str) -> ChecklistItem:
    return ChecklistItem(item, topic, AUTHORS, what)


def _run(item: int, topic: str, where: str) -> ChecklistItem:
    return ChecklistItem(item, topic, RUN, where)


def _fixed_items() -> dict[int, ChecklistItem]:
    """The items whose answer does not depend on the config."""
    items = [
        _authors(1, "Title names an AI method and its kind",
                 "a title or abstract that says the study is about deep learning image classification"),
        _authors(2, "Structured abstract", "design, methods, results and conclusions in the abstract"),
        _authors(3, "Background and intended clinical role",
                 "the clinical problem and where in the workflow the classifier would be used"),
        _authors(4, "Aims and hypotheses", "the study's aims and the hypotheses tested"),
        _authors(5, "Prospective or retrospective", "whether the images were collected prospectively or reused"),
        _authors(6, "Study goal", "the goal, e.g. feasibility, model development or validation"),
        _authors(8, "Inclusion and exclusion of images",
                 "which smears and cells were included or excluded and why (the run uses every readable image of "
                 "the data folders)"),
        _run(9, "Pre-processing of the images",
             "section Run summary (image size, augmentation); train.json and the config"),
        _run(10, "Subsets of the data used", "section Data (images per class and split); splits/{split}/split.csv"),
        _authors(11, "De-identification", "how patient identifiers were removed from the images and metadata"),
        _authors(12, "Missing data", "how missing or unreadable images and labels were handled"),
        _authors(13, "Image acquisition", "microscope or analyser, magnification, staining protocol and settings"),
        _authors(14, "How the reference labels were defined",
                 "the reference standard: how each cell's class was established"),
        _authors(15, "Why this reference standard", "the rationale for the reference standard chosen"),
        _authors(16, "Who labelled the images", "the annotators, their number and qualification"),
        _authors(17, "Labelling of the test set", "how the test images were annotated, blind to the model or not"),
        _authors(18, "Agreement between annotators",
                 "inter- and intra-rater variability (the label audit flags suspect labels, it does not measure "
                 "agreement)"),
        _run(19, "How images were assigned to partitions",
             "section Data (stratified split, split seeds); splits/{split}/split.csv"),
        _authors(20, "Level at which partitions are disjoint",
                 "whether train, validation and test are disjoint by patient or smear (the run checks duplicate "
                 "images only: section Leakage audit, splits/{split}/audit/leakage.csv)"),
        _authors(21, "Intended sample size", "how the number of images was chosen, e.g. a power calculation"),
        _run(22, "The model", "section Model card; splits/{split}/seeds/{seed}/model.pkl"),
        _run(23, "Software and versions", "section Run summary (environment); train.json"),
        _run(24, "Initialisation of the weights", "section Run summary; weights/resnet18.json and train.json (init)"),
        _run(25, "Training procedure",
             "the per-seed sections (phases, learning rates, epochs); splits/{split}/seeds/{seed}/history.csv, "
             "train.json"),
        _run(26, "Choice of the final model",
             "per-seed sections (best epoch restored by early stopping); train.json (phases)"),
        _run(27, "Ensembling",
             "section Seed robustness (seed ensemble); splits/{split}/ensemble/{dataset}/metrics.json"),
        _run(28, "Performance metrics", "section All seeds side by side; summary/metrics.csv"),
        _run(29, "Uncertainty and significance",
             "section All seeds side by side (Wilson and BCa bootstrap intervals); summary/metrics.csv"),
        _run(30, "Robustness and sensitivity",
             "section Seed robustness; summary/seeds.csv, summary/robustness.json"),
        _run(32, "Evaluation on internal data", "section All seeds side by side (test split); summary/metrics.csv"),
        _authors(34, "Trial registration", "the registration number and registry, or that there is none"),
        _authors(35, "Patients and examinations included and excluded",
                 "patients and smears behind the images, with the flow of exclusions (the run counts images only: "
                 "section Data, splits/{split}/split.csv)"),
        _authors(36, "Demographic and clinical characteristics",
                 "age, sex, diagnoses and other characteristics of the patients in each partition"),
        _run(38, "Per-class performance and its precision",
             "per-seed sections (precision, recall, F1 per class); splits/{split}/seeds/{seed}/{dataset}/metrics.json"),
        _run(39, "Analysis of the errors",
             "per-seed error galleries and section Seed robustness (always wrong, unstable); "
             "splits/{split}/seeds/{seed}/{dataset}/predictions.csv, summary/agreement.csv"),
        _authors(40, "Limitations of the study",
                 "the study's limitations (the run lists the limits of its own evidence in section Model card)"),
        _authors(41, "Implications for practice", "the intended use and what the results mean for practice"),
        _run(42, "Full protocol and technical details",
             "the config, the workflow (Snakefile, workflow/rules) and docs/results.md"),
        _authors(44, "Funding", "sources of funding and other support, and the funders' role"),
    ]
    return {i.item: i for i in items}


def _config_items(config: dict) -> list[ChecklistItem]:
    """The items whose answer depends on what the config declares or switches on."""
    claims, validity = config["claims"], config["validity"]
    training = declared_provenance(config).training
    external = list(config["external"] or {})
    items = [
        _run(7, "Where the images come from",
             f"section Data ({training.facts()}); config data_provenance") if training.declared()
        else _authors(7, "Where the images come from",
                      "the source of the images (laboratory, analyser, stain); the config declares none "
                      "(data_provenance)"),
        _run(31, "Explainability", "section External validity (Grad-CAM); "
             "splits/{split}/seeds/{seed}/{dataset}/saliency.csv") if validity["gradcam"]["enabled"]
        else _authors(31, "Explainability", "how the model's decisions were made interpretable (Grad-CAM is off "
                                             "in this run: validity.gradcam.enabled)"),
        _run(33, "Testing on external data",
             f"section External sets ({', '.join(external)}); summary/external.csv") if external
        else _authors(33, "Testing on external data",
                      "results on images from another source (the config names no external set)"),
        _run(37, "Performance with its uncertainty",
             "section Claims (paper against rerun) and All seeds side by side; summary/claims.csv, "
             "summary/metrics.csv") if claims
        else _run(37, "Performance with its uncertainty", "section All seeds side by side; summary/metrics.csv"),
        _run(43, "Availability of code, model and data",
             "section Claims (same seed trained twice); splits/{split}/reproducibility/reproducibility.json; the "
             "models under splits/{split}/seeds/{seed}/model.pkl") if config["reproducibility_check"]
        else _authors(43, "Availability of code, model and data",
                      "where code, trained model and data are available (the same-seed retraining is off in this "
                      "run: reproducibility_check)"),
    ]
    return items


def checklist_rows(config: dict) -> list[dict]:
    """checklist.csv rows (``item,topic,answered_by,where``), items 1 to 44 in order, for a full `config`."""
    items = _fixed_items() | {i.item: i for i in _config_items(config)}
    if sorted(items) != list(range(1, 45)):
        raise AssertionError("the checklist must list CLAIM 2024 items 1 to 44 once each")
    return [asdict(items[n]) for n in range(1, 45)]
