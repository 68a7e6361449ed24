"""Suspected label errors of one dataset from the seed ensemble's probabilities (cleanlab); nothing is relabelled.
Where the ensemble does not beat the majority baseline the audit is marked not informative and gives no count."""

from pathlib import Path

from leukoreport.base.atomic_io import read_json, write_csv, write_json
from leukoreport.base.step_log import step_log
from leukoreport.report.figures.label_audit import plot_suspects
from leukoreport.report.figures.style import note_figure
from leukoreport.report.gallery_rows import GALLERY_META, write_gallery_meta
from leukoreport.stats.label_audit import audit_informative, audit_summary, find_suspects
from leukoreport.stats.metrics import prediction_classes, read_predictions

with step_log(snakemake.log[0]):
    classes = prediction_classes(snakemake.input.predictions)
    gate = audit_informative(read_json(snakemake.input.metrics), Path(snakemake.input.metrics).as_posix())
    table = find_suspects(read_predictions(snakemake.input.predictions, classes), classes, snakemake.params.filter_by)
    table["informative"] = gate[0]
    summary = audit_summary(table, gate)
    summary.update({"dataset": snakemake.wildcards.dataset, "split_seed": int(snakemake.wildcards.split),
                    "seeds": list(snakemake.params.seeds), "filter_by": snakemake.params.filter_by})
    write_csv(table, snakemake.output.table)
    write_json(summary, snakemake.output.summary)
    title = f"Suspected label errors: {snakemake.wildcards.dataset}"
    if gate[0]:
        n = plot_suspects(table, snakemake.output.gallery, ".", title, snakemake.params.gallery)
        print(f"{n} suspected label errors in {len(table)} images")
    else:
        out = Path(snakemake.output.gallery)
        out.mkdir(parents=True, exist_ok=True)
        head = f"{title}: not informative, no count given (label_audit.json says why)"
        note_figure(head, out / "page-01.png", width=9.0)
        write_gallery_meta(out / GALLERY_META, 0, [], "suspected label errors", "label_issues.csv",
                           "not drawn: the audit is not informative", [head])
        print(gate[1])
