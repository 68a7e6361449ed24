"""Hash the split images (and, for the full audit, the external sets) and list exact and near duplicate pairs.

Rule `leakage` (what training waits for) audits the split alone; rule `leakage_external` reuses its hashes, hashes
only the external images and audits everything.
"""

import pandas as pd

from leukoreport.base.atomic_io import write_csv, write_json
from leukoreport.base.errors import LeukoError
from leukoreport.base.step_log import step_log
from leukoreport.data.leakage import audit, failure_message, format_pairs

with step_log(snakemake.log[0]):
    split = pd.read_csv(snakemake.input.split, dtype=str)
    externals = {name: pd.read_csv(path, dtype=str)
                 for name, path in zip(snakemake.params.names, snakemake.input.get("external", []))}
    hashes = snakemake.input.get("split_hashes")
    known = pd.read_csv(hashes, dtype=str, keep_default_na=False) if hashes else None
    if known is not None:
        print(f"hashes of {known['path'].nunique()} split image(s) reused from {hashes}")
    table, pairs, summary = audit(split, externals, ".", snakemake.params.max_distance, snakemake.params.hash_size,
                                  known=known)
    print(f"{summary.n_images} images audited; {summary.n_pairs} pair(s): {summary.n_exact} exact, "
          f"{summary.n_near} near")
    if len(pairs):
        print(format_pairs(pairs))
    if snakemake.params.action == "fail" and summary.n_pairs:
        raise LeukoError(failure_message(summary, snakemake.log[0]))
    write_csv(table, snakemake.output.hashes)
    write_csv(pairs, snakemake.output.pairs)
    write_json(summary.to_dict(), snakemake.output.summary)
