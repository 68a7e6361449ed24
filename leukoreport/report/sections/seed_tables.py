"""The summary's test-split table: one row per run, mean ± SD (the report's per-dataset tables: by_dataset.py)."""

from __future__ import annotations

import pandas as pd

from leukoreport.report.number_format import DASH, estimate, mean_sd, num, pct, pct1
from leukoreport.stats.run_tables import run_label

__all__ = ["headline_table"]


def headline_table(table: pd.DataFrame, dataset: str) -> dict:
    """Rows per seed of one dataset from metrics.csv (estimates with intervals) and mean ± SD over seeds."""
    group = table[table["dataset"] == dataset]
    rows = [{"label": run_label(int(r["split_seed"]), int(r["seed"]), group["split_seed"].nunique()),
             "n": int(r["n"]), "n_correct": int(r["n_correct"]),
             **{k: estimate(r[k], r[f"{k}_low"], r[f"{k}_high"])
                for k in ("accuracy", "balanced_accuracy", "macro_f1")},
             "ece": pct(r["ece"]), "brier": num(r["brier"]),
             "majority": DASH if pd.isna(r.get("majority_accuracy")) else pct1(r["majority_accuracy"])}
            for _, r in group.iterrows()]
    mean = None
    if len(group) >= 2:
        mean = {k: mean_sd(list(group[k]), "pct") for k in ("accuracy", "balanced_accuracy", "macro_f1", "ece")}
        mean["brier"] = mean_sd(list(group["brier"]), "num")
    return {"rows": rows, "mean": mean}
