"""The CLAIM 2024 reviewer checklist of this run: checklist.csv."""

import pandas as pd

from leukoreport.base.atomic_io import write_csv
from leukoreport.base.step_log import step_log
from leukoreport.report.checklist import CHECKLIST_COLUMNS, checklist_rows

with step_log(snakemake.log[0]):
    rows = checklist_rows(snakemake.params.config)
    write_csv(pd.DataFrame(rows, columns=CHECKLIST_COLUMNS), snakemake.output[0])
    print(f"{sum(r['answered_by'] == 'this run' for r in rows)} of {len(rows)} items answered by this run")
