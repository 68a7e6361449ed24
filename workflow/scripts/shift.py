"""Domain classifier, nearest-neighbour OOD scores and risk-coverage of one run on one dataset."""

from leukoreport.embeddings import load_embeddings
from leukoreport.files import write_csv, write_json
from leukoreport.logs import step_log
from leukoreport.metrics import prediction_classes, read_predictions
from leukoreport.validity import ShiftSettings, run_shift

with step_log(snakemake.log[0]):
    name = snakemake.wildcards.dataset
    train, test = load_embeddings(snakemake.input.train), load_embeddings(snakemake.input.test)
    data = test if name == "test" else load_embeddings(snakemake.input.data)
    pred = read_predictions(snakemake.input.predictions, prediction_classes(snakemake.input.predictions))
    table, summary, curve = run_shift(train, test, data, pred, name, ShiftSettings(**snakemake.params.settings))
    write_csv(table, snakemake.output.ood)
    write_csv(curve, snakemake.output.curve)
    write_json(summary, snakemake.output.summary)
    print({k: v for k, v in summary.items() if k in ("domain_classifier", "n")})
