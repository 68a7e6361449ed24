"""The report's "All seeds side by side" tables and the summary's test-split table: one row per run, mean ± SD."""

from __future__ import annotations

import pandas as pd

from leukoreport.report.number_format import DASH, estimate, mean_sd, num, pct, pct1
from leukoreport.report.sections.run_datasets import dataset_title
from leukoreport.stats.run_tables import run_label

__all__ = ["headline_table", "side_by_side_section"]


def side_by_side_section(seeds: list[dict], datasets: list[str]) -> dict:
    """Per dataset one table with a row per seed (estimates with intervals, calibration) and mean ± SD."""
    tables = []
    for i, name in enumerate(datasets):
        rows = [{"label": s["label"], "ci": s["datasets"][i]["ci"], "calibration": s["datasets"][i]["calibration"]}
                for s in seeds]
        raw = [s["datasets"][i]["_raw"] for s in seeds]
        mean = None
        if len(seeds) >= 2:
            mean = {k: mean_sd([r[k] for r in raw], "pct")
                    for k in ("accuracy", "balanced_accuracy", "macro_f1", "ece")}
            mean.update({k: mean_sd([r[k] for r in raw], "num") for k in ("brier", "log_loss")})
        tables.append({"name": name, "title": dataset_title(name), "n": seeds[0]["datasets"][i]["n"],
                       "rows": rows, "mean": mean, "baseline": seeds[0]["datasets"][i]["baseline"]})
    training = [{"label": s["label"], "epochs_run": s["epochs_run"], "best_epochs": s["best_epochs"],
                 "seconds": s["seconds"]} for s in seeds]
    seconds_mean = mean_sd([s["_seconds"] for s in seeds], "seconds") if len(seeds) >= 2 else None
    return {"datasets": [{"name": d, "title": dataset_title(d)} for d in datasets], "tables": tables,
            "training": training, "seconds_mean": seconds_mean}


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
