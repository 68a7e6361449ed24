"""Average the seeds' class probabilities on one dataset of one split and score the ensemble; with the label audit
on, the same job lists the suspected label errors (cleanlab; nothing is relabelled; not informative, with no count,
where the ensemble does not beat the majority baseline), its seconds in timing.json (scripts/validity_cost.py)."""

from pathlib import Path

import pandas as pd

from leukoreport.base.atomic_io import read_json, write_csv, write_json
from leukoreport.base.job_timing import JobTiming
from leukoreport.base.step_log import step_log
from leukoreport.config.settings import Uncertainty
from leukoreport.stats.baselines import add_baselines
from leukoreport.stats.metrics import compute_metrics, prediction_classes, read_predictions
from leukoreport.stats.robustness import ensemble


def label_audit(out, dataset: str, split_seed: int, seeds: list[int], settings: dict) -> None:
    """Suspected label errors of the ensemble written to out.label_table/label_summary/label_gallery."""
    from leukoreport.report.figures.label_audit import plot_suspects
    from leukoreport.report.figures.style import note_figure
    from leukoreport.report.gallery_rows import GALLERY_META, write_gallery_meta
    from leukoreport.stats.label_audit import audit_informative, audit_summary, find_suspects

    classes = prediction_classes(out.predictions)
    gate = audit_informative(read_json(out.metrics), Path(out.metrics).as_posix())
    table = find_suspects(read_predictions(out.predictions, classes), classes, settings["filter_by"])
    table["informative"] = gate[0]
    summary = audit_summary(table, gate)
    summary.update({"dataset": dataset, "split_seed": split_seed, "seeds": seeds, "filter_by": settings["filter_by"]})
    write_csv(table, out.label_table)
    write_json(summary, out.label_summary)
    title = f"Suspected label errors: {dataset}"
    if gate[0]:
        n = plot_suspects(table, out.label_gallery, ".", title, settings["gallery"])
        print(f"{n} suspected label errors in {len(table)} images")
    else:
        folder = Path(out.label_gallery)
        folder.mkdir(parents=True, exist_ok=True)
        head = f"{title}: not informative, no count given (label_audit.json says why)"
        note_figure(head, folder / "page-01.png", width=9.0)
        write_gallery_meta(folder / GALLERY_META, 0, [], "suspected label errors", "label_issues.csv",
                           "not drawn: the audit is not informative", [head])
        print(gate[1])


with step_log(snakemake.log[0]):
    out, dataset, split_seed = snakemake.output, snakemake.wildcards.dataset, int(snakemake.wildcards.split)
    classes = prediction_classes(snakemake.input.predictions[0])
    preds = {f"seed {seed}": read_predictions(path, classes)
             for seed, path in zip(snakemake.params.seeds, snakemake.input.predictions)}
    table = ensemble(preds, classes)
    metrics = compute_metrics(table, classes, dataset, None,
                              Uncertainty.from_config(snakemake.params.uncertainty), split_seed)
    split = pd.read_csv(snakemake.input.split)
    add_baselines(metrics, table, split.loc[split["split"] == "train", "label"],
                  Uncertainty.from_config(snakemake.params.uncertainty))
    metrics["seeds"] = list(snakemake.params.seeds)
    write_csv(table, out.predictions)
    write_json(metrics, out.metrics)
    print(f"ensemble of {len(preds)} seeds: accuracy {metrics['accuracy']:.4f} on {metrics['n']} images")
    timing = JobTiming("ensemble")
    if getattr(out, "label_table", None):
        with timing.measure("label_audit"):
            label_audit(out, dataset, split_seed, list(snakemake.params.seeds), snakemake.params.label_audit)
    timing.write(out.timing)
