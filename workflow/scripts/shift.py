"""Domain classifier, nearest-neighbour OOD scores and risk-coverage of one run on one dataset."""

from leukoreport.base.atomic_io import write_csv, write_json
from leukoreport.base.step_log import step_log
from leukoreport.config.settings import ShiftSettings
from leukoreport.data.embeddings import load_embeddings
from leukoreport.stats.metrics import prediction_classes, read_predictions
from leukoreport.stats.validity import run_shift

with step_log(snakemake.log[0]):
    name = snakemake.params.name
    settings = ShiftSettings(**snakemake.params.settings)
    train = load_embeddings(snakemake.input.train)
    test = load_embeddings(snakemake.input.test)
    data = test if name == "test" else load_embeddings(snakemake.input.data)
    path = snakemake.input.predictions
    pred = read_predictions(path, prediction_classes(path))
    table, summary, curve = run_shift(train, test, data, pred, name, settings)
    write_csv(table, snakemake.output.ood)
    write_csv(curve, snakemake.output.curve)
    write_json(summary, snakemake.output.summary)
    print(name, {k: v for k, v in summary.items() if k in ("domain_classifier", "n")})
