"""Judge the paper's claims (config key `claims`) against the runs: claims.json, claims.csv and deviations.csv."""

import pandas as pd

from leukoreport.base.atomic_io import write_csv, write_json
from leukoreport.base.step_log import step_log
from leukoreport.config.claims import load_claims
from leukoreport.stats.claim_evidence import DEVIATION_COLUMNS, claims_document, collect_evidence, deviation_rows
from leukoreport.stats.claims import CLAIM_COLUMNS, judge_claims, verdict_rows
from leukoreport.stats.run_tables import run_keys

with step_log(snakemake.log[0]):
    claims = load_claims(snakemake.input.claims)
    keys = run_keys(snakemake.params.splits, snakemake.params.seeds)
    evidence = collect_evidence(snakemake.params.root, snakemake.params.config, keys, snakemake.params.datasets,
                                claims)
    verdicts = judge_claims(claims, evidence)
    write_json(claims_document(claims, evidence, verdicts), snakemake.output.claims)
    write_csv(pd.DataFrame(verdict_rows(verdicts), columns=list(CLAIM_COLUMNS)), snakemake.output.table)
    write_csv(pd.DataFrame(deviation_rows(evidence.deviations), columns=list(DEVIATION_COLUMNS)),
              snakemake.output.deviations)
    for v in verdicts:
        print(f"{v.id}: {v.verdict}{f' ({v.direction})' if v.direction else ''}: {v.reason}")
