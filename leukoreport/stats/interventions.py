"""Interventions at evaluation over runs: per external set and intervention, accuracy, the change against plain
evaluation (paired per-image bootstrap, seeds matched), a Holm-adjusted sign-flip p-value, a verdict and a "why"
sentence per set.

Inputs are each run's ``{dataset}/interventions.csv`` (one row per intervention and image; the image column is
``image`` or ``path``) and
``interventions.json`` (per intervention: applicable, note, cost, domain AUC and median OOD percentile after it).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from leukoreport.base.atomic_io import read_json
from leukoreport.base.errors import LeukoError
from leukoreport.base.validation import check_confidence, check_positive_int, require_columns, require_keys
from leukoreport.stats.baselines import majority_class, paired_gain_interval
from leukoreport.stats.intervals import balanced_accuracy
from leukoreport.stats.paired import (
    EXACT_SIGN_FLIPS,
    RANDOM_SIGN_FLIPS,
    TIE,
    bootstrap_metrics,
    observed_difference,
    sign_flip_test,
    summarize_bootstrap,
)
from leukoreport.stats.run_files import Pair
from leukoreport.stats.verdicts import holm

__all__ = ["CSV_COLUMNS", "INTERVENTIONS", "JSON_KEYS", "LABELS", "LOWERS", "MAX_WIDTH", "MIN_IMAGES", "NO_CHANGE",
           "NOT_INFORMATIVE", "RAISES", "REFERENCE", "SUMMARY_COLUMNS", "VERDICT_RULE", "RunInterventions",
           "Settings", "apply_holm", "change_text", "interventions_summary", "path_key", "read_run", "set_rows",
           "set_sentence", "sign_flip_p", "verdict"]

REFERENCE = "plain"
INTERVENTIONS = ("plain", "reinhard", "macenko", "scale", "adabn", "combined")
LABELS = {"plain": "plain evaluation", "reinhard": "colour normalisation (Reinhard)",
          "macenko": "stain normalisation (Macenko)", "scale": "scale matching", "adabn": "AdaBN",
          "combined": "the combination of all three"}
CSV_COLUMNS = ("intervention", "image", "label", "prediction", "correct", "p_prediction")
JSON_KEYS = ("applicable", "note", "n_images", "seconds", "seconds_per_image", "domain_auc", "median_ood_percentile")

MIN_IMAGES = 20  # fewer images than this: the change is not informative
MAX_WIDTH = 0.30  # a change interval wider than 30 pp is not informative
RAISES, LOWERS, NO_CHANGE, NOT_INFORMATIVE = "raises", "lowers", "no change detected", "not informative"
VERDICT_RULE = (f"'raises' / 'lowers': Holm-adjusted p < alpha (1 − confidence level) and the paired bootstrap "
                f"interval of the accuracy change against plain evaluation excludes 0; 'not informative': the "
                f"intervention is not applicable, the set has fewer than {MIN_IMAGES} images, or the interval is "
                f"wider than {100 * MAX_WIDTH:g} pp; 'no change detected' otherwise. p: two-sided sign-flip test of "
                f"the per-image differences in correctness (mean over runs); Holm over every applicable "
                f"intervention × external set with at least {MIN_IMAGES} images")
SUMMARY_COLUMNS = ("dataset", "intervention", "label", "applicable", "note", "n_images", "n_runs", "accuracy",
                   "balanced_accuracy", "majority_class", "majority_accuracy", "gain", "gain_low", "gain_high",
                   "accuracy_change", "accuracy_change_low", "accuracy_change_high", "balanced_accuracy_change",
                   "balanced_accuracy_change_low", "balanced_accuracy_change_high", "p", "p_holm", "verdict",
                   "reason", "domain_auc", "median_ood_percentile", "seconds_per_image", "added_seconds_per_image",
                   "confidence_level")
_FLIP_ROWS = 1 << 20  # sign flips per chunk x differences (bounds memory for large sets)
_PATH = re.compile(r"splits/(\d+)/seeds/(\d+)/([^/]+)/interventions\.(csv|json)$")


@dataclass
class Settings:
    """Interval and verdict settings: config keys confidence_level, bootstrap_resamples, bootstrap_seed."""

    confidence: float = 0.95
    n_resamples: int = 9999
    seed: int = 0
    min_images: int = MIN_IMAGES
    max_width: float = MAX_WIDTH
    n_flips: int = RANDOM_SIGN_FLIPS

    def __post_init__(self) -> None:
        self.confidence = check_confidence("interventions", self.confidence)
        self.n_resamples = check_positive_int("interventions", "bootstrap_resamples", self.n_resamples)

    @property
    def alpha(self) -> float:
        """1 − confidence level, rounded (0.05, not 0.050000000000000044)."""
        return round(1 - self.confidence, 12)


@dataclass
class RunInterventions:
    """One run's interventions on one external set: the per-image table and the per-intervention summary."""

    split_seed: int
    seed: int
    dataset: str
    table: pd.DataFrame
    summary: dict
    source: str = ""
    interventions: list[str] = field(default_factory=list)


def path_key(path: str | Path) -> tuple[int, int, str]:
    """(split seed, seed, dataset) of a run's ``.../splits/S/seeds/T/DATASET/interventions.csv`` (or .json)."""
    m = _PATH.search(Path(path).as_posix())
    if not m:
        raise LeukoError(f"{Path(path).as_posix()}: not a run's splits/S/seeds/T/DATASET/interventions file")
    return int(m.group(1)), int(m.group(2)), m.group(3)


def read_run(csv_path: str | Path, json_path: str | Path) -> RunInterventions:
    """A run's interventions.csv and interventions.json, checked: one-line LeukoError naming the file and key."""
    where = Path(csv_path).as_posix()
    split_seed, seed, dataset = path_key(csv_path)
    if path_key(json_path) != (split_seed, seed, dataset):
        raise LeukoError(f"{Path(json_path).as_posix()}: not the same run and set as {where}")
    try:
        table = pd.read_csv(csv_path, dtype={"intervention": str, "image": str, "path": str, "label": str,
                                            "prediction": str})
    except (OSError, pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise LeukoError(f"{where}: cannot read as CSV: {exc}") from None
    if "image" not in table.columns and "path" in table.columns:  # the image column may be called 'path'
        table = table.rename(columns={"path": "image"})
    require_columns(where, table, CSV_COLUMNS, allow_empty=False)
    correct = pd.to_numeric(table["correct"], errors="coerce")
    if not correct.isin([0, 1]).all():
        raise LeukoError(f"{where}: column 'correct' must hold 0 or 1")
    if not (correct == (table["label"] == table["prediction"]).astype(int)).all():
        raise LeukoError(f"{where}: column 'correct' disagrees with label == prediction")
    table["correct"] = correct.astype(int)
    summary = read_json(json_path)
    jwhere = Path(json_path).as_posix()
    require_keys(jwhere, summary, ["interventions"])
    per = summary["interventions"]
    if not isinstance(per, dict) or REFERENCE not in per:
        raise LeukoError(f"{jwhere}: key 'interventions' must map names to results and hold '{REFERENCE}'")
    for name, entry in per.items():
        require_keys(f"{jwhere}: interventions.{name}", entry, JSON_KEYS)
    names = [n for n in INTERVENTIONS if n in per] + sorted(set(per) - set(INTERVENTIONS))
    reference = table[table["intervention"] == REFERENCE]
    if reference.empty:
        raise LeukoError(f"{where}: no rows of intervention '{REFERENCE}'")
    plain = reference.sort_values("image")
    if plain["image"].duplicated().any():
        raise LeukoError(f"{where}: an image appears twice under '{REFERENCE}'")
    for name in names:
        rows = table[table["intervention"] == name].sort_values("image")
        if rows.empty:
            continue
        if list(rows["image"]) != list(plain["image"]) or list(rows["label"]) != list(plain["label"]):
            raise LeukoError(f"{where}: intervention '{name}' lists other images or labels than '{REFERENCE}'")
    unknown = sorted(set(table["intervention"]) - set(per))
    if unknown:
        raise LeukoError(f"{where}: interventions {unknown} are not in {jwhere}")
    return RunInterventions(split_seed=split_seed, seed=seed, dataset=dataset, table=table, summary=per,
                            source=where, interventions=names)


def sign_flip_p(d, n_flips: int = RANDOM_SIGN_FLIPS, seed: int = 0) -> float:
    """Two-sided sign-flip p-value of mean(d) = 0: paired.sign_flip_test on the non-zero d (a zero flips to itself),
    with the random flips drawn in chunks (the same draws, bounded memory); 1 when every d is 0."""
    d = np.asarray(d, dtype=float).ravel()
    nz = d[np.abs(d) >= TIE]
    if nz.size == 0:
        return 1.0
    if nz.size <= EXACT_SIGN_FLIPS or nz.size * n_flips <= _FLIP_ROWS:
        return sign_flip_test(nz, n_flips, seed)
    observed = abs(nz.mean())
    rng = np.random.default_rng(seed)
    rows = max(1, _FLIP_ROWS // nz.size)
    hits = 0
    for start in range(0, n_flips, rows):
        signs = rng.choice(np.array([-1.0, 1.0]), size=(min(rows, n_flips - start), nz.size))
        hits += int(np.sum(np.abs(signs @ nz) / nz.size >= observed - TIE))
    return float((1 + hits) / (1 + n_flips))


def verdict(row: dict, settings: Settings) -> tuple[str, str]:
    """(verdict, reason) of one row by VERDICT_RULE."""
    if not row["applicable"]:
        note = str(row["note"] or "").removeprefix("not applicable: ")  # the interventions job's notes may say so
        return NOT_INFORMATIVE, f"not applicable: {note}" if note else "not applicable"
    if row["n_images"] < settings.min_images:
        return NOT_INFORMATIVE, f"{row['n_images']} images, fewer than {settings.min_images}"
    low, high = row["accuracy_change_low"], row["accuracy_change_high"]
    width = high - low
    if width > settings.max_width:
        return NOT_INFORMATIVE, f"interval {100 * width:.0f} pp wide (more than {100 * settings.max_width:g} pp)"
    if row["p_holm"] < settings.alpha and (low > 0 or high < 0):
        return (RAISES if low > 0 else LOWERS), ""
    return NO_CHANGE, ""


def _codes(runs: list[RunInterventions]) -> dict[str, int]:
    """Class name -> code over every label and prediction of the set (sorted: the training classes' order)."""
    names = set()
    for r in runs:
        names |= set(r.table["label"]) | set(r.table["prediction"])
    return {c: i for i, c in enumerate(sorted(names))}


def _mean_json(runs: list[RunInterventions], name: str, key: str) -> float | None:
    """Mean over runs of interventions.NAME.KEY; None when any run lacks it."""
    values = [r.summary.get(name, {}).get(key) for r in runs]
    if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in values):
        return None
    return float(np.mean(values))


def _rows_of(run: RunInterventions, name: str) -> pd.DataFrame:
    return run.table[run.table["intervention"] == name].sort_values("image")


def _not_applicable(runs: list[RunInterventions], name: str) -> str | None:
    """The note of the first run where `name` is not applicable or has no rows, else None."""
    for r in runs:
        entry = r.summary.get(name)
        if entry is None or not entry["applicable"] or _rows_of(r, name).empty:
            note = "" if entry is None else str(entry.get("note") or "")
            return note or f"no results in {r.source}"
    return None


def set_rows(runs: list[RunInterventions], settings: Settings) -> list[dict]:
    """Rows of one external set (runs of that set only), plain first; p_holm and verdicts come from apply_holm."""
    if not runs:
        raise LeukoError("interventions: no runs for the set")
    dataset = runs[0].dataset
    plains = [_rows_of(r, REFERENCE) for r in runs]
    for r, p in zip(runs, plains):
        if list(p["image"]) != list(plains[0]["image"]) or list(p["label"]) != list(plains[0]["label"]):
            raise LeukoError(f"{r.source}: other images or labels than {runs[0].source} (runs must share the set)")
    codes = _codes(runs)
    labels = list(plains[0]["label"])
    y_true = np.array([codes[x] for x in labels])
    paths = np.array(plains[0]["image"])
    majority = majority_class(labels, sorted(codes))
    base = (np.array(labels) == majority).astype(float)
    names = list(dict.fromkeys(n for r in runs for n in r.interventions))
    out = []
    for name in names:
        note = _not_applicable(runs, name) if name != REFERENCE else None
        row = dict.fromkeys(SUMMARY_COLUMNS)
        row.update(dataset=dataset, intervention=name, label=LABELS.get(name, name), applicable=note is None,
                   note=note or "", n_images=int(y_true.size), n_runs=len(runs), majority_class=majority,
                   majority_accuracy=float(base.mean()), confidence_level=settings.confidence)
        if note is None:
            row.update({key: _mean_json(runs, name, key)
                        for key in ("domain_auc", "median_ood_percentile", "seconds_per_image")})
            preds = [np.array([codes[x] for x in _rows_of(r, name)["prediction"]]) for r in runs]
            correct = np.mean([p == y_true for p in preds], axis=0)
            low, high = paired_gain_interval(correct, base, settings.confidence, settings.n_resamples, settings.seed)
            row.update(accuracy=float(correct.mean()),
                       balanced_accuracy=float(np.mean([balanced_accuracy(y_true, p, len(codes)) for p in preds])),
                       gain=float(correct.mean() - base.mean()), gain_low=low, gain_high=high)
            if name != REFERENCE:
                row.update(_change(runs, name, preds, plains, y_true, paths, codes, settings))
        out.append(row)
    return out


def _change(runs, name, preds, plains, y_true, paths, codes, settings: Settings) -> dict:
    """Change against plain (paired bootstrap, seeds matched, the same resampled images for every run), the
    sign-flip p-value on the per-image mean difference in correctness, and the added seconds per image."""
    plain_preds = [np.array([codes[x] for x in p["prediction"]]) for p in plains]
    pairs = [Pair(split_seed=r.split_seed, seed=r.seed, paths=paths, y_true=y_true, pred_a=a, pred_b=b,
                  n_classes=len(codes)) for r, a, b in zip(runs, preds, plain_preds)]
    metrics = ["accuracy", "balanced_accuracy"]
    boot = bootstrap_metrics(pairs, metrics, settings.n_resamples, settings.seed)
    row = {}
    for m in metrics:
        s = summarize_bootstrap(boot[m], observed_difference(pairs, m), m, settings.confidence, settings.seed)
        row.update({f"{m}_change": s.difference, f"{m}_change_low": s.low, f"{m}_change_high": s.high})
    d = np.mean([(a == y_true).astype(float) - (b == y_true) for a, b in zip(preds, plain_preds)], axis=0)
    row["p"] = sign_flip_p(d, settings.n_flips, settings.seed)
    added = [r.summary[name]["seconds_per_image"] - r.summary[REFERENCE]["seconds_per_image"] for r in runs
             if r.summary[name]["seconds_per_image"] is not None
             and r.summary[REFERENCE]["seconds_per_image"] is not None]
    row["added_seconds_per_image"] = float(np.mean(added)) if len(added) == len(runs) else None
    return row


def apply_holm(rows: list[dict], settings: Settings) -> list[dict]:
    """Holm over the rows in the family (an applicable intervention, not plain, at least min_images images), then
    each row's verdict and reason by VERDICT_RULE (plain: verdict 'reference')."""
    family = [r for r in rows if r["intervention"] != REFERENCE and r["applicable"]
              and r["n_images"] >= settings.min_images and r["p"] is not None]
    for r, p in zip(family, holm([r["p"] for r in family])):
        r["p_holm"] = float(p)
    for r in rows:
        if r["intervention"] == REFERENCE:
            r["verdict"], r["reason"] = "reference", ""
        else:
            r["verdict"], r["reason"] = verdict(r, settings)
    return rows


def change_text(row: dict) -> str:
    """'21.0 pp [15.0 to 27.0]': a detected change of accuracy and its interval, as magnitudes in the direction of
    its verdict (raises or lowers)."""
    sign = 1 if row["verdict"] == RAISES else -1
    low, high = sorted((sign * 100 * row["accuracy_change_low"], sign * 100 * row["accuracy_change_high"]))
    return f"{100 * abs(row['accuracy_change']):.1f} pp [{low:.1f} to {high:.1f}]"


def set_sentence(rows: list[dict]) -> str:
    """The "why" sentence of one set from its rows (after apply_holm): raises (largest first), lowers, no change,
    not informative."""
    plain = next(r for r in rows if r["intervention"] == REFERENCE)
    name, n = plain["dataset"], plain["n_images"]
    head = (f"On '{name}' ({n} images, {plain['n_runs']} run{'s' if plain['n_runs'] > 1 else ''}; plain accuracy "
            f"{100 * plain['accuracy']:.1f}%, majority baseline {100 * plain['majority_accuracy']:.1f}%)")
    others = [r for r in rows if r["intervention"] != REFERENCE]
    if not others:
        return f"{head}: no intervention was evaluated."
    parts = []
    for kind, sign in ((RAISES, 1), (LOWERS, -1)):
        group = sorted((r for r in others if r["verdict"] == kind), key=lambda r: -sign * r["accuracy_change"])
        for i, r in enumerate(group):
            what = f"{kind} accuracy by " if i == 0 else "by "
            parts.append(f"{r['label']} {what}{change_text(r)}")
    same = [r["label"] for r in others if r["verdict"] == NO_CHANGE]
    if same:
        parts.append(f"{', '.join(same)}: no change detected")
    lost = [r for r in others if r["verdict"] == NOT_INFORMATIVE]
    if lost and all(r["reason"] == lost[0]["reason"] for r in lost) and len(lost) == len(others):
        parts.append(f"no intervention is informative ({lost[0]['reason']})")
    else:
        parts += [f"{r['label']}: not informative ({r['reason']})" for r in lost]
    return f"{head}: {'; '.join(parts)}."


def interventions_summary(runs: list[RunInterventions], settings: Settings) -> tuple[pd.DataFrame, dict]:
    """results/summary/interventions.csv and interventions.json from every run's files, sets in first-seen order."""
    by_set: dict[str, list[RunInterventions]] = {}
    for r in runs:
        by_set.setdefault(r.dataset, []).append(r)
    rows = [row for group in by_set.values() for row in set_rows(group, settings)]
    apply_holm(rows, settings)
    sentences = {name: set_sentence([r for r in rows if r["dataset"] == name]) for name in by_set}
    table = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
    clean = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in rows]
    family = sum(r["p_holm"] is not None for r in rows)
    return table, {
        "datasets": list(by_set), "rows": clean, "sentences": sentences, "verdict_rule": VERDICT_RULE,
        "alpha": settings.alpha, "confidence_level": settings.confidence, "n_resamples": settings.n_resamples,
        "bootstrap_seed": settings.seed, "min_images": settings.min_images, "max_width": settings.max_width,
        "n_comparisons": family, "adjustment": "Holm",
        "interval_method": ("paired percentile bootstrap over images, seeds matched (the same resampled images for "
                            "every run); statistic: mean over runs of metric(intervention) − metric(plain)"),
        "gain_method": ("accuracy (mean over runs) minus the majority baseline; paired percentile bootstrap over "
                        "images of the per-image mean correctness against the baseline's"),
    }
