"""Domain classifier, nearest-neighbour OOD scores and risk-coverage of one run on every dataset."""

from leukoreport.base.atomic_io import write_csv, write_json
from leukoreport.base.step_log import step_log
from leukoreport.config.settings import ShiftSettings
from leukoreport.data.embeddings import load_embeddings
from leukoreport.stats.metrics import prediction_classes, read_predictions
from leukoreport.stats.validity import run_shift

with step_log(snakemake.log[0]):
    names = list(snakemake.params.datasets)
    settings = ShiftSettings(**snakemake.params.settings)
    train = load_embeddings(snakemake.input.train)
    embeddings = {n: load_embeddings(p) for n, p in zip(names, snakemake.input.data)}
    for i, name in enumerate(names):
        path = snakemake.input.predictions[i]
        pred = read_predictions(path, prediction_classes(path))
        table, summary, curve = run_shift(train, embeddings["test"], embeddings[name], pred, name, settings)
        write_csv(table, snakemake.output.ood[i])
        write_csv(curve, snakemake.output.curve[i])
        write_json(summary, snakemake.output.summary[i])
        print(name, {k: v for k, v in summary.items() if k in ("domain_classifier", "n")})
