"""Compare two runs on the same images: paired bootstrap, sign-flip and Wilcoxon tests, McNemar per seed.

The differences, intervals, Holm-adjusted verdicts and probabilities of improvement come from leukoreport.stats.verdicts
(run A as the variant, run B as the reference), so `compare` and the variants section agree number for number; the
paired tests come from leukoreport.stats.paired. This module writes the sentences, the view model and the files.
Python computes and formats every number; templates/compare.html.j2 only lays them out.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np

from leukoreport.base.atomic_io import write_json
from leukoreport.base.errors import LeukoError
from leukoreport.base.metric_catalogue import higher_is_better, label
from leukoreport.base.validation import check_confidence, check_positive_int
from leukoreport.report.number_format import DASH, estimate, gap_estimate, pct1
from leukoreport.stats.paired import (
    EXACT_SIGN_FLIPS,
    N_BINS,
    NO_DIFFERENCE,
    RANDOM_SIGN_FLIPS,
    direction,
    mcnemar,
    p_value,
    pair_values,
    sign_flip_test,
    snap,
    wilcoxon_p,
)
from leukoreport.stats.run_files import Run, load_run, match, unmatched
from leukoreport.stats.verdicts import compare_variants

__all__ = ["SIGNS", "compare_runs", "conclusion", "verdict", "view", "write_comparison"]

SIGNS = {"better": 1, "worse": -1}  # verdict -> direction of the overall sentence


# --------------------------------------------------------------------------- words

def conclusion(metric: str, diff: float, low: float, high: float, name_a: str, name_b: str,
               outcome: str | None = None) -> str:
    """One sentence: 'No difference detected in …' or '{A} is better/worse than {B} …' (ECE: lower is better).

    `outcome` is the verdict ('better', 'worse', 'no difference detected'); without it the interval decides.
    """
    text = f"{name_a} \u2212 {name_b} = {gap_estimate(diff, low, high)}"
    if outcome is None:
        sign = direction(low, high) * (1 if higher_is_better(metric) else -1)
        outcome = {1: "better", -1: "worse"}.get(sign, NO_DIFFERENCE)
    if outcome not in ("better", "worse"):
        return f"No difference detected in {label(metric)}: {text}."
    return f"{name_a} is {outcome} than {name_b} in {label(metric)}: {text}."


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def verdict(directions: dict[str, int], name_a: str, name_b: str, dataset: str = "test") -> str:
    """One sentence over all metrics from the direction (+1, 0, −1) of each metric's interval."""
    better = [label(m) for m, s in directions.items() if s > 0]
    worse = [label(m) for m, s in directions.items() if s < 0]
    same = [label(m) for m, s in directions.items() if s == 0]
    where = "on the test split" if dataset == "test" else f"on '{dataset}'"
    if not better and not worse:
        return f"Overall, no difference between {name_a} and {name_b} was detected {where} in any metric."
    if better and worse:
        return (f"Overall, the result is mixed {where}: {name_a} is better than {name_b} in {_join(better)} "
                f"but worse in {_join(worse)}.")
    word, which = ("better", better) if better else ("worse", worse)
    rest = f" (no difference detected in {_join(same)})" if same else ""
    return f"Overall, {name_a} is {word} than {name_b} {where} in {_join(which)}{rest}."


# --------------------------------------------------------------------------- the comparison

def _display_names(a: Run, b: Run) -> tuple[str, str]:
    """The runs' names, with ' (A)' and ' (B)' appended when they are equal."""
    return (a.name, b.name) if a.name != b.name else (f"{a.name} (A)", f"{b.name} (B)")


def _dataset_result(a: Run, b: Run, name_a: str, name_b: str, dataset: str, rows: dict, result: dict) -> dict:
    """Per-seed values, McNemar, across-seed tests and the verdicts' numbers of one dataset."""
    pairs = match(a, b, dataset)
    only_a, only_b = unmatched(a, b, dataset)
    metrics_used = result["metrics"]
    n_bins = result["n_bins"]
    per_seed = []
    for p in pairs:
        values = {}
        for m in metrics_used:
            va, vb = pair_values(p, m, n_bins)
            values[m] = {"a": va, "b": vb, "difference": snap(float(va - vb))}
        per_seed.append({"split_seed": p.split_seed, "seed": p.seed, "n": p.n, "metrics": values,
                         "mcnemar": mcnemar(p.y_true, p.pred_a, p.pred_b).to_dict()})
    metrics = {}
    for m in metrics_used:
        r = rows[(dataset, m)]
        d = [row["metrics"][m]["difference"] for row in per_seed]
        metrics[m] = {
            "label": label(m),
            "higher_is_better": higher_is_better(m),
            "a_mean": float(np.mean([row["metrics"][m]["a"] for row in per_seed])),
            "b_mean": float(np.mean([row["metrics"][m]["b"] for row in per_seed])),
            "difference": r["difference"],
            "low": r["low"],
            "high": r["high"],
            "direction": direction(r["low"], r["high"]),
            "p_a_better": r["p_variant_better"],
            "p_b_better": r["p_reference_better"],
            "p": r["p"],
            "p_holm": r["p_holm"],
            "verdict": r["verdict"],
            "p_improvement": r["p_improvement"],
            "pi_low": r["pi_low"],
            "pi_high": r["pi_high"],
            "per_seed_differences": d,
            "sign_flip_p": sign_flip_test(d, seed=result["seed"]),
            "sign_flip_method": "exact" if len(d) <= EXACT_SIGN_FLIPS else f"{RANDOM_SIGN_FLIPS} random flips",
            "wilcoxon_p": wilcoxon_p(d),
            "conclusion": conclusion(m, r["difference"], r["low"], r["high"], name_a, name_b, r["verdict"]),
        }
    return {
        "dataset": dataset,
        "seeds": {"matched": [{"split_seed": p.split_seed, "seed": p.seed, "n": p.n} for p in pairs],
                  "only_a": [{"split_seed": s, "seed": e} for s, e in only_a],
                  "only_b": [{"split_seed": s, "seed": e} for s, e in only_b]},
        "verdict": verdict({m: SIGNS.get(metrics[m]["verdict"], 0) for m in metrics_used}, name_a, name_b,
                           dataset),
        "notes": _notes(metrics, only_a, only_b, name_a, name_b, len(pairs), result),
        "metrics": metrics,
        "per_seed": per_seed,
    }


def compare_runs(a: Run | str | Path, b: Run | str | Path, n_resamples: int = 9999, seed: int = 0,
                 confidence: float = 0.95, dataset: str | None = None, n_bins: int = N_BINS) -> dict:
    """Everything compare.json holds (plain JSON types) for every dataset both runs evaluated, or only `dataset`.

    result["datasets"][name] holds each dataset's runs, seeds, per-metric tests and per-seed values; the same
    fields of the first dataset (the test split when both have it) are repeated at the top level.
    """
    check_positive_int("compare_runs", "n_resamples", n_resamples)
    check_confidence("compare_runs", confidence)
    n_bins = check_positive_int("compare_runs", "n_bins", n_bins)
    a = a if isinstance(a, Run) else load_run(a)
    b = b if isinstance(b, Run) else load_run(b)
    name_a, name_b = _display_names(a, b)
    found = compare_variants({name_b: b, name_a: a}, reference=name_b,
                             datasets=None if dataset is None else [dataset], n_resamples=n_resamples, seed=seed,
                             confidence=confidence, n_bins=n_bins)
    if not found["datasets"]:
        reasons = "; ".join(f"'{s['dataset']}': {s['reason']}" for s in found["skipped"])
        raise LeukoError(f"runs {a.name} and {b.name} have no dataset in common to compare ({reasons})")
    rows = {(r["dataset"], r["metric"]): r for r in found["comparisons"]}
    datasets = {d: _dataset_result(a, b, name_a, name_b, d, rows, found) for d in found["datasets"]}
    first = datasets[found["datasets"][0]]
    return {
        "dataset": first["dataset"],
        "confidence": float(confidence),
        "n_resamples": int(n_resamples),
        "seed": int(seed),
        "n_bins": int(n_bins),
        "interval_method": "paired bootstrap over images, percentile; probability of improvement: stratified "
                           "bootstrap over the runs of each (strata: split seeds), percentile",
        "adjustment": found["adjustment"],
        "alpha": found["alpha"],
        "n_comparisons": found["n_comparisons"],
        "p_method": found["p_method"],
        "runs": {"a": {"name": name_a, "path": a.results.resolve().as_posix(), "classes": list(a.classes)},
                 "b": {"name": name_b, "path": b.results.resolve().as_posix(), "classes": list(b.classes)}},
        "seeds": first["seeds"],
        "verdict": first["verdict"],
        "notes": first["notes"],
        "metrics": first["metrics"],
        "per_seed": first["per_seed"],
        "datasets": datasets,
        "skipped": found["skipped"],
        "general_notes": found["notes"],
    }


def _keys_text(keys: list[tuple[int, int]]) -> str:
    return ", ".join(f"split {s} seed {e}" for s, e in keys)


def _notes(metrics: dict, only_a: list, only_b: list, name_a: str, name_b: str, k: int, result: dict) -> list[str]:
    """Caveats for the reader: unmatched seeds, too few seeds for the across-seed tests, seeds that disagree."""
    notes = []
    if only_a:
        notes.append(f"Only {name_a} has {_keys_text(only_a)}; not compared.")
    if only_b:
        notes.append(f"Only {name_b} has {_keys_text(only_b)}; not compared.")
    if k <= 5:
        smallest = 2.0 ** (1 - k)
        notes.append(f"With {k} matched seed{'s' if k != 1 else ''} the smallest possible sign-flip p-value is "
                     f"{smallest:g}, so the across-seed tests cannot reach p < 0.05; the bootstrap interval covers "
                     f"only the sampling of test images, not the variation between training runs.")
    for r in metrics.values():
        signs = {int(np.sign(x)) for x in r["per_seed_differences"]}
        if r["direction"] != 0 and -r["direction"] in signs:
            notes.append(f"In {r['label']} the per-seed differences do not all agree with the interval's direction.")
        if r["direction"] != 0 and r["verdict"] not in SIGNS:
            notes.append(f"In {r['label']} the {100 * result['confidence']:g}% interval excludes 0 but the "
                         f"Holm-adjusted p-value ({p_value(r['p_holm'])}, over {result['n_comparisons']} "
                         f"comparisons) is not below {result['alpha']:g}, so no difference is declared.")
    return notes


# --------------------------------------------------------------------------- formatting and writing

def _pp(x: float) -> str:
    """A signed difference in percentage points without the unit: −0.135 -> '−13.5'."""
    return f"{100 * float(x):+.1f}".replace("-", "\u2212")


def _dataset_title(dataset: str) -> str:
    return "Test split" if dataset == "test" else f"External set \u201c{dataset}\u201d"


def _seed_keys(rows: list[dict]) -> str:
    return ", ".join(f"{m['split_seed']}/{m['seed']}" for m in rows) or DASH


def _dataset_view(d: dict) -> dict:
    """One dataset's part of the template context."""
    metrics = []
    for r in d["metrics"].values():
        gap = gap_estimate(r["difference"], r["low"], r["high"])
        improvement = estimate(r["p_improvement"], r["pi_low"], r["pi_high"], "num")
        metrics.append({
            "label": r["label"],
            "lower_better": not r["higher_is_better"],
            "a": pct1(r["a_mean"]),
            "b": pct1(r["b_mean"]),
            "difference": gap.value,
            "difference_interval": gap.interval,
            "css": {"better": "better", "worse": "worse"}.get(r["verdict"], "none"),
            "p": p_value(r["p"]),
            "p_holm": p_value(r["p_holm"]),
            "verdict": r["verdict"],
            "improvement": improvement.value,
            "improvement_interval": improvement.interval,
            "sign_flip_p": p_value(r["sign_flip_p"]),
            "wilcoxon_p": p_value(r["wilcoxon_p"]),
            "conclusion": r["conclusion"],
        })
    seeds = []
    for row in d["per_seed"]:
        cells = []
        for key in d["metrics"]:
            v = row["metrics"][key]
            cells.append({"a": pct1(v["a"]), "b": pct1(v["b"]), "difference": _pp(v["difference"])})
        mc = row["mcnemar"]
        seeds.append({"split_seed": row["split_seed"], "seed": row["seed"], "n": row["n"], "cells": cells,
                      "b": mc["b"], "c": mc["c"], "p": p_value(mc["p"])})
    matched = d["seeds"]["matched"]
    return {
        "name": d["dataset"],
        "title": _dataset_title(d["dataset"]),
        "verdict": d["verdict"],
        "notes": d["notes"],
        "metrics": metrics,
        "metric_labels": [r["label"] for r in d["metrics"].values()],
        "seeds": seeds,
        "matched": _seed_keys(matched),
        "n_matched": len(matched),
        "n_images": " or ".join(str(n) for n in sorted({m["n"] for m in matched})),
        "only_a": _seed_keys(d["seeds"]["only_a"]),
        "only_b": _seed_keys(d["seeds"]["only_b"]),
    }


def view(result: dict) -> dict:
    """The template context: every number of `result` formatted as text, one block per dataset."""
    runs = result["runs"]
    datasets = result["datasets"]
    return {
        "title": f"Comparison: {runs['a']['name']} vs {runs['b']['name']}",
        "date": datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z").strip(),
        "confidence": f"{100 * result['confidence']:g}%",
        "n_resamples": f"{result['n_resamples']:,}".replace(",", "\u2009"),
        "seed": result["seed"],
        "n_bins": result["n_bins"],
        "alpha": f"{result['alpha']:g}",
        "n_comparisons": result["n_comparisons"],
        "a": runs["a"],
        "b": runs["b"],
        "classes": ", ".join(runs["a"]["classes"]),
        "dataset_names": ", ".join(datasets),
        "datasets": [_dataset_view(d) for d in datasets.values()],
        "skipped": [f"{_dataset_title(s['dataset'])}: {s['reason']}" for s in result["skipped"]],
        "general_notes": result["general_notes"],
    }


def write_comparison(result: dict, out_dir: str | Path, templates_dir: str | Path) -> dict[str, Path]:
    """Write compare.json, compare.html and compare.pdf under out_dir, each atomically; returns their paths."""
    from leukoreport.report.render import render_html, write_html, write_pdf  # lazy: heavy imports

    out_dir = Path(out_dir)
    templates_dir = Path(templates_dir)
    if not (templates_dir / "compare.html.j2").is_file():
        raise LeukoError(f"{templates_dir.as_posix()}: no compare.html.j2 (--templates must name the templates folder)")
    if out_dir.exists() and not out_dir.is_dir():
        raise LeukoError(f"{out_dir.as_posix()}: exists and is not a folder")
    paths = {"json": out_dir / "compare.json", "html": out_dir / "compare.html", "pdf": out_dir / "compare.pdf"}
    html = render_html(view(result), templates_dir, "compare")
    write_json(result, paths["json"])
    write_html(html, paths["html"])
    write_pdf(paths["html"], paths["pdf"])
    return paths
