"""Robustness over training seeds and split seeds: spread, variance components, per-image agreement, ensemble."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass
from itertools import combinations
from numbers import Integral
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from leukoreport.base.errors import LeukoError
from leukoreport.base.metric_catalogue import METRICS
from leukoreport.base.validation import check_confidence, require_columns, require_keys
from leukoreport.stats.metrics import check_labels, prob_columns, read_predictions
from leukoreport.stats.run_tables import run_label

__all__ = ["AGREEMENT_COLUMNS", "DISAGREEMENT_COLUMNS", "KEY_COLUMNS", "LOSS_FLOOR", "METRICS_KEYS", "SEED_COLUMNS",
           "SeedSpread", "VarianceComponents", "across_seeds", "agreement", "aligned_runs", "disagreement", "ensemble",
           "one_way_anova", "robustness_files", "robustness_summary", "seed_row", "seed_table", "spread",
           "variance_components"]

KEY_COLUMNS = ["split_seed", "seed", "dataset"]
SEED_COLUMNS = [*KEY_COLUMNS, "n", "accuracy", "balanced_accuracy", "macro_f1", "ece", "brier", "log_loss"]
AGREEMENT_COLUMNS = ["path", "label", "n_runs", "n_correct", "n_predicted_classes", "majority",
                     "predictions", "status", "always_wrong", "unstable"]
DISAGREEMENT_COLUMNS = ["run_a", "run_b", "n", "disagree", "rate", "both_wrong", "only_a_wrong", "only_b_wrong"]
METRICS_KEYS = ["split_seed", "seed", "dataset", "n", "accuracy", "balanced_accuracy", "macro_f1",
                "calibration", "classes", "per_class"]
LOSS_FLOOR = 1e-15


# ---------------------------------------------------------------- records

@dataclass
class SeedSpread:
    """Spread of one metric over runs; sd and the t interval are None with fewer than 2 runs."""

    n_runs: int
    mean: float | None
    sd: float | None
    t_low: float | None
    t_high: float | None
    min: float | None
    max: float | None
    values: list[float]

    def to_dict(self) -> dict:
        """Plain JSON types."""
        return asdict(self)


@dataclass
class VarianceComponents:
    """One-way random-effects ANOVA of a metric with split seed as the group."""

    n_splits: int
    seeds_per_split: int
    ms_between: float
    ms_within: float
    sd_initialisation: float
    sd_split: float
    share_split: float | None

    def to_dict(self) -> dict:
        """Plain JSON types."""
        return asdict(self)


# ---------------------------------------------------------------- helpers

def _plain(value: Any) -> Any:
    """`value` with numpy scalars unwrapped, tuples as lists and NaN/infinities as None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _float(value: Any) -> float:
    """`value` as a float, None as NaN."""
    return math.nan if value is None else float(value)


def _check_seed_table(table: Any, where: str) -> None:
    """A seed table with the key and metric columns and no repeated (split_seed, seed, dataset)."""
    require_columns(where, table, [*KEY_COLUMNS, *METRICS], allow_empty=False)
    dup = table[table.duplicated(KEY_COLUMNS)]
    if len(dup):
        r = dup.iloc[0]
        raise LeukoError(f"{where}: split seed {r['split_seed']}, seed {r['seed']}, dataset "
                         f"'{r['dataset']}' appears more than once")


def _numeric(series: pd.Series, where: str) -> np.ndarray:
    """`series` as floats (None as NaN), else LeukoError naming the column."""
    try:
        return pd.to_numeric(series, errors="raise").astype(float).to_numpy()
    except (ValueError, TypeError):
        raise LeukoError(f"{where}: column '{series.name}' has non-numeric values") from None


def _recall_columns(table: pd.DataFrame) -> list[str]:
    """The recall_<class> columns of a seed table, in column order."""
    return [c for c in table.columns if str(c).startswith("recall_")]


# ---------------------------------------------------------------- seed table

def _recall(metrics: dict, cls: str, where: str) -> float:
    """Recall of `cls` from per_class, NaN when the class is absent."""
    entry = metrics["per_class"].get(cls) if isinstance(metrics["per_class"], dict) else None
    if not isinstance(entry, dict):
        raise LeukoError(f"{where}: per_class has no entry for class '{cls}'")
    value = entry.get("recall")
    return math.nan if not entry.get("present", True) or value is None else float(value)


def seed_row(metrics: dict, classes: list[str], where: str = "metrics") -> dict:
    """One row of the seed table from a metrics.json dict with `split_seed` added."""
    require_keys(where, metrics, METRICS_KEYS)
    require_keys(f"{where} calibration", metrics["calibration"], ["ece", "brier", "log_loss"])
    if list(metrics["classes"]) != list(classes):
        raise LeukoError(f"{where}: classes {list(metrics['classes'])} differ from {list(classes)}")
    for key in ("split_seed", "seed", "n"):
        if isinstance(metrics[key], bool) or not isinstance(metrics[key], Integral):
            raise LeukoError(f"{where}: {key} = {metrics[key]!r} is not an integer")
    cal = metrics["calibration"]
    row = {"split_seed": int(metrics["split_seed"]), "seed": int(metrics["seed"]),
           "dataset": str(metrics["dataset"]), "n": int(metrics["n"])}
    row.update({k: _float(metrics[k]) for k in ("accuracy", "balanced_accuracy", "macro_f1")})
    row.update({k: _float(cal[k]) for k in ("ece", "brier", "log_loss")})
    row.update({f"recall_{c}": _recall(metrics, c, where) for c in classes})
    return row


def _where(i: int, metrics: Any) -> str:
    """Name of the i-th metrics dict for error messages."""
    if isinstance(metrics, dict):
        return f"metrics[{i}] (dataset {metrics.get('dataset')!r}, seed {metrics.get('seed')!r})"
    return f"metrics[{i}]"


def seed_table(all_metrics: list[dict]) -> pd.DataFrame:
    """One row per (split_seed, seed, dataset) in input order: headline metrics and recall per class."""
    if not all_metrics:
        raise LeukoError("seed_table: all_metrics is empty")
    require_keys(_where(0, all_metrics[0]), all_metrics[0], ["classes"])
    classes = [str(c) for c in all_metrics[0]["classes"]]
    rows = [seed_row(m, classes, _where(i, m)) for i, m in enumerate(all_metrics)]
    table = pd.DataFrame(rows, columns=[*SEED_COLUMNS, *(f"recall_{c}" for c in classes)])
    _check_seed_table(table, "seed_table")
    return table


# ---------------------------------------------------------------- spread over seeds

def spread(values: Any, confidence: float = 0.95) -> SeedSpread:
    """Mean, sample SD, t interval of the mean, min and max of `values`, NaN skipped."""
    confidence = check_confidence("spread", confidence)
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    n = int(v.size)
    if n == 0:
        return SeedSpread(0, None, None, None, None, None, None, [])
    mean = float(v.mean())
    sd = low = high = None
    if n >= 2:
        sd = 0.0 if v.min() == v.max() else float(v.std(ddof=1))  # exact 0, no rounding residue
        half = float(stats.t.ppf((1 + confidence) / 2, n - 1)) * sd / math.sqrt(n)
        low, high = mean - half, mean + half
    return SeedSpread(n, mean, sd, low, high, float(v.min()), float(v.max()), [float(x) for x in v])


def across_seeds(table: pd.DataFrame, confidence: float = 0.95) -> dict:
    """Per dataset (first-appearance order) and metric: spread over runs (SeedSpread.to_dict())."""
    confidence = check_confidence("across_seeds", confidence)
    _check_seed_table(table, "across_seeds")
    out: dict[str, dict] = {}
    for dataset in pd.unique(table["dataset"]):
        sub = table[table["dataset"] == dataset]
        columns = [*METRICS, *[c for c in _recall_columns(table) if sub[c].notna().any()]]
        out[str(dataset)] = {c: spread(_numeric(sub[c], "across_seeds"), confidence).to_dict()
                             for c in columns}
    return out


# ---------------------------------------------------------------- variance components

def _sum_sq(values: np.ndarray) -> float:
    """Sum of squared deviations from the mean; exactly 0 for constant values (no rounding residue)."""
    if values.min() == values.max():
        return 0.0
    return float(np.sum((values - values.mean()) ** 2))


def one_way_anova(groups: list[list[float]]) -> VarianceComponents:
    """Random-effects variance components of a balanced design: >= 2 groups of equal size >= 2."""
    x = np.asarray(groups, dtype=float)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 2:
        raise LeukoError(f"one_way_anova: need >= 2 groups of equal size >= 2, got shape {x.shape}")
    if np.isnan(x).any():
        raise LeukoError("one_way_anova: groups hold NaN values")
    k, n = x.shape
    ms_between = n * _sum_sq(x.mean(axis=1)) / (k - 1)
    ms_within = sum(_sum_sq(row) for row in x) / (k * (n - 1))
    var_split = max(0.0, (ms_between - ms_within) / n)
    total = var_split + ms_within
    return VarianceComponents(n_splits=k, seeds_per_split=n, ms_between=ms_between, ms_within=ms_within,
                              sd_initialisation=math.sqrt(ms_within), sd_split=math.sqrt(var_split),
                              share_split=var_split / total if total > 0 else None)


def _dataset_components(sub: pd.DataFrame, dataset: str) -> dict:
    """Variance components of the METRICS for one dataset; {} unless >= 2 splits of >= 2 seeds."""
    counts = sub.groupby("split_seed", sort=False).size()
    if counts.nunique() > 1:
        raise LeukoError(f"variance_components: dataset '{dataset}' has unequal numbers of seeds per "
                         f"split seed {({int(k): int(v) for k, v in counts.items()})}; a balanced design is needed")
    if len(counts) < 2 or counts.iloc[0] < 2:
        return {}
    out = {}
    for metric in METRICS:
        groups = [_numeric(g[metric], "variance_components") for _, g in sub.groupby("split_seed", sort=False)]
        if any(np.isnan(g).any() for g in groups):
            raise LeukoError(f"variance_components: dataset '{dataset}' has missing values of '{metric}'")
        out[metric] = one_way_anova(groups).to_dict()
    return out


def variance_components(table: pd.DataFrame) -> dict:
    """Per dataset and metric: split-seed vs initialisation variance; {} with a single split seed."""
    _check_seed_table(table, "variance_components")
    if table["split_seed"].nunique() < 2:
        return {}
    return {str(d): _dataset_components(table[table["dataset"] == d], str(d))
            for d in pd.unique(table["dataset"])}


# ---------------------------------------------------------------- per-image agreement

def _indexed(run: str, df: Any, columns: list[str], where: str) -> pd.DataFrame:
    """One run's table indexed and sorted by path; LeukoError on missing columns or repeated paths."""
    require_columns(f"{where}: run '{run}'", df, ["path", "label", "prediction", *columns], allow_empty=False)
    df = df.assign(path=df["path"].astype(str), label=df["label"].astype(str),
                   prediction=df["prediction"].astype(str))
    dup = df["path"][df["path"].duplicated()]
    if len(dup):
        raise LeukoError(f"{where}: run '{run}' lists path '{dup.iloc[0]}' more than once")
    return df.set_index("path").sort_index()


def _check_same_images(first: str, ref: pd.DataFrame, run: str, other: pd.DataFrame, where: str) -> None:
    """Raise LeukoError naming `run` and a path unless it has the same paths and labels as `first`."""
    lacks = ref.index.difference(other.index)
    if len(lacks):
        raise LeukoError(f"{where}: run '{run}' lacks path '{lacks[0]}' that run '{first}' has")
    extra = other.index.difference(ref.index)
    if len(extra):
        raise LeukoError(f"{where}: run '{run}' has path '{extra[0]}' that run '{first}' lacks")
    differ = ref.index[ref["label"].to_numpy() != other["label"].to_numpy()]
    if len(differ):
        raise LeukoError(f"{where}: run '{run}' labels path '{differ[0]}' differently from run '{first}'")


def aligned_runs(preds: dict[str, pd.DataFrame], where: str = "runs",
                 columns: list[str] | None = None) -> dict[str, pd.DataFrame]:
    """The runs' tables indexed and sorted by path, checked to hold the same images and labels."""
    if not isinstance(preds, dict) or not preds:
        raise LeukoError(f"{where}: preds is empty; need at least one run")
    runs = [str(k) for k in preds]
    if len(set(runs)) != len(runs):
        raise LeukoError(f"{where}: run labels {runs} repeat after conversion to text")
    tables = {run: _indexed(run, df, list(columns or []), where) for run, df in zip(runs, preds.values())}
    first = runs[0]
    for run in runs[1:]:
        _check_same_images(first, tables[first], run, tables[run], where)
    return tables


def _labels_and_predictions(preds: dict[str, pd.DataFrame], where: str) -> tuple[pd.Series, pd.DataFrame]:
    """True label per path and a path x run frame of predictions, sorted by path."""
    tables = aligned_runs(preds, where)
    labels = next(iter(tables.values()))["label"]
    return labels, pd.DataFrame({run: t["prediction"] for run, t in tables.items()})


def _majority(values: list[str]) -> str:
    """Most frequent value; ties go to the alphabetically first."""
    counts = Counter(values)
    best = max(counts.values())
    return min(v for v, k in counts.items() if k == best)


def agreement(preds: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per image (sorted by path): how many runs got it right and whether predictions differ."""
    labels, predictions = _labels_and_predictions(preds, "agreement")
    runs = list(predictions.columns)
    rows = predictions.to_numpy().tolist()
    n_correct = predictions.eq(labels, axis=0).sum(axis=1).to_numpy()
    n_classes = np.array([len(set(r)) for r in rows])
    unstable = n_classes > 1
    status = np.where(unstable, "unstable", np.where(n_correct == len(runs), "always right", "always wrong"))
    return pd.DataFrame({
        "path": labels.index.to_numpy(), "label": labels.to_numpy(), "n_runs": len(runs),
        "n_correct": n_correct, "n_predicted_classes": n_classes,
        "majority": [_majority(r) for r in rows],
        "predictions": ["; ".join(f"{run}={p}" for run, p in zip(runs, r)) for r in rows],
        "status": status, "always_wrong": n_correct == 0, "unstable": unstable,
    }, columns=AGREEMENT_COLUMNS)


def disagreement(preds: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per unordered pair of runs (key order): disagreements and who was wrong."""
    labels, predictions = _labels_and_predictions(preds, "disagreement")
    n = len(labels)
    rows = []
    for a, b in combinations(predictions.columns, 2):
        wrong_a, wrong_b = predictions[a] != labels, predictions[b] != labels
        disagree = int((predictions[a] != predictions[b]).sum())
        rows.append({"run_a": a, "run_b": b, "n": n, "disagree": disagree, "rate": disagree / n,
                     "both_wrong": int((wrong_a & wrong_b).sum()),
                     "only_a_wrong": int((wrong_a & ~wrong_b).sum()),
                     "only_b_wrong": int((~wrong_a & wrong_b).sum())})
    return pd.DataFrame(rows, columns=DISAGREEMENT_COLUMNS)


# ---------------------------------------------------------------- ensemble

def _check_classes(classes: Any, where: str) -> list[str]:
    """`classes` as a non-empty list of distinct strings, else LeukoError."""
    if isinstance(classes, str) or not classes:
        raise LeukoError(f"{where}: classes must be a non-empty list of class names, got {classes!r}")
    classes = [str(c) for c in classes]
    if len(set(classes)) != len(classes):
        raise LeukoError(f"{where}: classes {classes} repeat a name")
    return classes


def _probabilities(run: str, t: pd.DataFrame, columns: list[str], where: str) -> np.ndarray:
    """The run's probability columns as a float array, else LeukoError naming the run and column."""
    for c in columns:
        if pd.to_numeric(t[c], errors="coerce").isna().any():
            raise LeukoError(f"{where}: run '{run}' column '{c}' has missing or non-numeric values")
    return t[columns].apply(pd.to_numeric).to_numpy(dtype=float)


def ensemble(preds: dict[str, pd.DataFrame], classes: list[str]) -> pd.DataFrame:
    """predictions.csv-format table (sorted by path) of the runs' mean probabilities; argmax ties go
    to the first class, loss = -ln(mean p(true)) clipped at 1e-15."""
    classes = _check_classes(classes, "ensemble")
    columns = prob_columns(classes)
    tables = aligned_runs(preds, "ensemble", columns)
    for run, t in tables.items():
        check_labels(t, classes, f"ensemble: run '{run}'")
    mean = np.mean([_probabilities(run, t, columns, "ensemble") for run, t in tables.items()], axis=0)
    labels = next(iter(tables.values()))["label"]
    y = np.array([classes.index(c) for c in labels])
    p_true = mean[np.arange(len(y)), y]
    out = pd.DataFrame({"path": labels.index.to_numpy(), "label": labels.to_numpy(),
                        "prediction": [classes[i] for i in mean.argmax(axis=1)]})
    out[columns] = mean
    out["loss"] = -np.log(np.maximum(p_true, LOSS_FLOOR))
    return out


# ---------------------------------------------------------------- robustness.json

def _images(table: pd.DataFrame, where: str) -> dict:
    """Counts of images always right, always wrong and unstable in an agreement table."""
    require_columns(where, table, ["n_runs", "n_correct", "always_wrong", "unstable"])
    return {"n": int(len(table)), "always_right": int((table["n_correct"] == table["n_runs"]).sum()),
            "always_wrong": int(table["always_wrong"].astype(bool).sum()),
            "unstable": int(table["unstable"].astype(bool).sum())}


def _pairs(table: pd.DataFrame, where: str) -> dict:
    """Mean and max disagreement rate over pairs of runs (None without pairs) and the pair rows."""
    require_columns(where, table, DISAGREEMENT_COLUMNS)
    rates = table["rate"].astype(float)
    return {"mean_rate": float(rates.mean()) if len(rates) else None,
            "max_rate": float(rates.max()) if len(rates) else None,
            "pairs": _plain(table[DISAGREEMENT_COLUMNS].to_dict(orient="records"))}


def _ensemble_entry(metrics: dict, run_accuracy: np.ndarray, where: str) -> dict:
    """Ensemble headline metrics and its rank: single runs with strictly lower accuracy, of n_runs."""
    require_keys(where, metrics, ["accuracy", "balanced_accuracy", "macro_f1", "calibration", "n_correct", "n"])
    require_keys(f"{where} calibration", metrics["calibration"], ["ece"])
    accuracy = float(metrics["accuracy"])
    return {"accuracy": accuracy, "balanced_accuracy": metrics["balanced_accuracy"],
            "macro_f1": metrics["macro_f1"], "ece": metrics["calibration"]["ece"],
            "n_correct": int(metrics["n_correct"]), "n": int(metrics["n"]),
            "rank": int(np.sum(run_accuracy < accuracy)), "n_runs": int(run_accuracy.size)}


def _per_dataset(mapping: Any, datasets: list[str], name: str) -> None:
    """Raise LeukoError unless `mapping` has exactly one entry per dataset of the seed table."""
    if not isinstance(mapping, dict):
        raise LeukoError(f"robustness_summary: {name} must be a dict keyed by dataset")
    missing = [d for d in datasets if d not in mapping]
    if missing:
        raise LeukoError(f"robustness_summary: {name} lacks dataset(s) {missing}")
    extra = [d for d in mapping if d not in datasets]
    if extra:
        raise LeukoError(f"robustness_summary: {name} has dataset(s) {extra} not in the seed table")


def robustness_summary(table: pd.DataFrame, agreement_tables: dict[str, pd.DataFrame],
                       disagreement_tables: dict[str, pd.DataFrame], ensemble_metrics: dict[str, dict],
                       confidence: float = 0.95) -> dict:
    """The robustness.json structure (plain JSON types, no NaN)."""
    spreads = across_seeds(table, confidence)
    datasets = list(spreads)
    for name, mapping in (("agreement_tables", agreement_tables), ("disagreement_tables", disagreement_tables),
                          ("ensemble_metrics", ensemble_metrics)):
        _per_dataset(mapping, datasets, name)
    out = {}
    for d in datasets:
        accuracy = _numeric(table.loc[table["dataset"].astype(str) == d, "accuracy"], "robustness_summary")
        out[d] = {"across_seeds": spreads[d],
                  "images": _images(agreement_tables[d], f"robustness_summary: agreement_tables['{d}']"),
                  "disagreement": _pairs(disagreement_tables[d], f"robustness_summary: disagreement_tables['{d}']"),
                  "ensemble": _ensemble_entry(ensemble_metrics[d], accuracy[~np.isnan(accuracy)],
                                              f"robustness_summary: ensemble_metrics['{d}']")}
    return _plain({"confidence_level": float(confidence), "datasets": out,
                   "variance_components": variance_components(table)})


def robustness_files(all_metrics: list[dict], prediction_paths: list[str | Path], ensembles: list[dict],
                     confidence: float = 0.95) -> tuple[pd.DataFrame, dict, pd.DataFrame, pd.DataFrame]:
    """seeds.csv, robustness.json, agreement.csv and disagreement.csv of a whole run.

    Runs sharing a split seed share their test images: agreement, disagreement and the ensemble are per split
    seed and dataset; the spread across seeds pools every run of a dataset.
    """
    if len(all_metrics) != len(prediction_paths) or not all_metrics:
        raise LeukoError(f"robustness: {len(all_metrics)} metrics files but {len(prediction_paths)} predictions files")
    table = seed_table(all_metrics)
    classes = list(all_metrics[0]["classes"])
    splits = list(dict.fromkeys(int(m["split_seed"]) for m in all_metrics))
    grouped: dict[tuple[int, str], dict[str, pd.DataFrame]] = {}
    for m, path in zip(all_metrics, prediction_paths):
        label = run_label(int(m["split_seed"]), int(m["seed"]), len(splits))
        grouped.setdefault((int(m["split_seed"]), str(m["dataset"])), {})[label] = read_predictions(path, classes)
    agreements, disagreements, by_split = [], [], {}
    for split in splits:
        datasets = [d for (s, d) in grouped if s == split]
        agree = {d: agreement(grouped[(split, d)]) for d in datasets}
        disagree = {d: disagreement(grouped[(split, d)]) for d in datasets}
        ens = {str(e["dataset"]): e for e in ensembles if int(e["split_seed"]) == split}
        sub = table[table["split_seed"] == split].reset_index(drop=True)
        by_split[str(split)] = robustness_summary(sub, agree, disagree, ens, confidence)
        for d in datasets:
            agreements.append(agree[d].assign(split_seed=split, dataset=d))
            disagreements.append(disagree[d].assign(split_seed=split, dataset=d))
    front = ["split_seed", "dataset"]
    agreement_table = pd.concat(agreements, ignore_index=True)
    disagreement_table = pd.concat(disagreements, ignore_index=True)
    summary = _plain({"confidence_level": float(confidence), "split_seeds": splits,
                      "seeds": list(dict.fromkeys(int(m["seed"]) for m in all_metrics)),
                      "across_seeds": across_seeds(table, confidence), "by_split": by_split,
                      "variance_components": variance_components(table)})
    return (table, summary,
            agreement_table[front + [c for c in agreement_table.columns if c not in front]],
            disagreement_table[front + [c for c in disagreement_table.columns if c not in front]])
