"""Compare recipe variants with a reference variant on every dataset: summaries over seeds, paired tests, verdicts.

Per variant and dataset: mean, SD and interquartile mean (IQM) over runs with stratified bootstrap intervals
(strata: split seeds). Per variant, dataset and metric: the paired per-image bootstrap of variant − reference
(paired.bootstrap_metrics, seeds matched), its two-sided p-value, Holm's adjustment over all comparisons, a verdict
and the probability of improvement over pairs of runs (rliable). leukoreport.compare.compare_runs uses this
module, so both give the same numbers for the same predictions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from leukoreport.base.errors import LeukoError
from leukoreport.base.metric_catalogue import HIGHER_IS_BETTER, METRICS, label
from leukoreport.base.validation import check_confidence, check_positive_int
from leukoreport.stats.paired import (
    NO_DIFFERENCE,
    TIE,
    bootstrap_metrics,
    observed_difference,
    observed_metric,
    summarize_bootstrap,
)
from leukoreport.stats.run_files import Run, dataset_keys, frame_codes, load_predictions, load_run, match, unmatched

__all__ = ["COMPARISON_COLUMNS", "FEW_SEEDS", "INTERVAL_METHOD", "P_METHOD", "SUMMARY_COLUMNS", "bootstrap_p",
           "compare_variants", "decide", "holm", "iqm", "probability_of_improvement", "stratified_bootstrap",
           "variant_tables"]

FEW_SEEDS = 5  # fewer runs than this on a dataset earn a note
P_METHOD = ("two-sided paired-bootstrap p-value of difference = 0: min(1, 2 (1 + min(#boot <= 0, #boot >= 0)) "
            "/ (R + 1)), never below 2 / (R + 1)")
SUMMARY_COLUMNS = ("variant", "dataset", "metric", "label", "n_seeds", "n_images", "mean", "sd", "mean_low",
                   "mean_high", "iqm", "iqm_low", "iqm_high", "values")
COMPARISON_COLUMNS = ("variant", "reference", "dataset", "metric", "label", "higher_is_better", "n_pairs", "n_images",
                      "difference", "low", "high", "p_variant_better", "p_reference_better", "p", "p_holm", "verdict",
                      "p_improvement", "pi_low", "pi_high", "beats_seed_noise")
INTERVAL_METHOD = ("differences: paired bootstrap over images (seeds matched, the same images for both), percentile; "
                   "means and IQMs: stratified bootstrap over runs (strata: split seeds), percentile; "
                   "probability of improvement: stratified bootstrap over the runs of each, percentile")


# --------------------------------------------------------------------------- statistics

def _values(where: str, values) -> np.ndarray:
    """`values` as a non-empty 1-d float array of finite numbers, else LeukoError."""
    try:
        v = np.asarray(values, dtype=float).ravel()
    except (TypeError, ValueError):
        raise LeukoError(f"{where}: values must be numbers") from None
    if v.size == 0:
        raise LeukoError(f"{where}: no values")
    if not np.all(np.isfinite(v)):
        raise LeukoError(f"{where}: values must be finite numbers")
    return v


def iqm(values) -> float:
    """Interquartile mean as rliable defines it: the mean after trimming 25% at each end (scipy trim_mean)."""
    return float(stats.trim_mean(_values("iqm", values), 0.25))


def _iqm_rows(x: np.ndarray) -> np.ndarray:
    return stats.trim_mean(x, 0.25, axis=-1)


def _mean_rows(x: np.ndarray) -> np.ndarray:
    return x.mean(axis=-1)


def stratified_bootstrap(values_by_stratum: list[np.ndarray], statistic, n_resamples: int, seed: int) -> np.ndarray:
    """The statistic of n_resamples resamples drawn with replacement within each stratum (strata never mix).

    Draw order: rng = default_rng(seed); for each stratum in order `rng.integers(0, n_s, size=(n_resamples, n_s))`.
    `statistic` gets the resamples side by side, shape (n_resamples, sum n_s), and reduces the last axis.
    """
    where = "stratified_bootstrap"
    n_resamples = check_positive_int(where, "n_resamples", n_resamples)
    strata = [_values(where, s) for s in values_by_stratum]
    if not strata:
        raise LeukoError(f"{where}: no strata")
    rng = np.random.default_rng(seed)
    sample = np.concatenate([s[rng.integers(0, s.size, size=(n_resamples, s.size))] for s in strata], axis=1)
    out = np.asarray(statistic(sample), dtype=float)
    if out.shape != (n_resamples,):
        raise LeukoError(f"{where}: statistic returned shape {out.shape}, expected ({n_resamples},)")
    return out


def _improvement_rows(x: np.ndarray, y: np.ndarray, higher_is_better: bool) -> np.ndarray:
    """P(X beats Y) for each row of x (R, nx) against the same row of y (R, ny); |x − y| < TIE is a tie."""
    d = x[:, :, None] - y[:, None, :]
    if not higher_is_better:
        d = -d
    wins = np.where(np.abs(d) < TIE, 0.5, (d > 0).astype(float))
    return wins.mean(axis=(1, 2))


def probability_of_improvement(x, y, higher_is_better: bool = True) -> float:
    """P(X beats Y): mean over all (i, j) of [x_i better than y_j] + 0.5 [x_i == y_j] (ties within 1e-12)."""
    x = _values("probability_of_improvement", x)
    y = _values("probability_of_improvement", y)
    return float(_improvement_rows(x[None, :], y[None, :], bool(higher_is_better))[0])


def holm(p_values) -> np.ndarray:
    """Holm step-down adjusted p-values: sorted p_(j) times (m − j), running maximum, capped at 1, original order."""
    p = np.asarray(p_values, dtype=float).ravel()
    if p.size == 0:
        return p.copy()
    if not np.all(np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise LeukoError("holm: p-values must be numbers between 0 and 1")
    order = np.argsort(p, kind="stable")
    m = p.size
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adjusted
    return out


def bootstrap_p(boot: np.ndarray) -> float:
    """Two-sided bootstrap p-value of difference = 0 (see P_METHOD); 1 when every resample is 0."""
    boot = np.asarray(boot, dtype=float)
    tail = min(int(np.count_nonzero(boot <= 0)), int(np.count_nonzero(boot >= 0)))
    return float(min(1.0, 2 * (1 + tail) / (boot.size + 1)))


def decide(difference: float, p_holm: float, alpha: float, higher_is_better: bool) -> str:
    """'better' or 'worse' when p_holm < alpha (by the sign of the difference), else 'no difference detected'."""
    if not p_holm < alpha or difference == 0:
        return NO_DIFFERENCE
    return "better" if (difference > 0) == higher_is_better else "worse"


def _interval(boot: np.ndarray, confidence: float) -> tuple[float, float]:
    low, high = np.quantile(boot, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(low), float(high)


# --------------------------------------------------------------------------- per-run values

def _dataset_order(names: set[str]) -> list[str]:
    """'test' first, then the external sets by name."""
    return sorted(names, key=lambda d: (d != "test", d))


def _run_values(run: Run, frames: dict, metrics: list[str], n_bins: int) -> dict[str, np.ndarray]:
    """Each metric of every run (frames in (split_seed, seed) order), as compare computes them."""
    out = {m: [] for m in metrics}
    for pred in frames.values():
        y, p, probs = frame_codes(run, pred)
        for m in metrics:
            out[m].append(observed_metric(m, y, p, probs, len(run.classes), n_bins))
    return {m: np.asarray(v) for m, v in out.items()}


def _strata(frames: dict) -> list[np.ndarray]:
    """Positions of the runs grouped by split seed, in order of split seed."""
    splits = np.array([k[0] for k in frames])
    return [np.flatnonzero(splits == s) for s in sorted(set(splits.tolist()))]


def _n_images(frames: dict) -> int:
    """Images per run (the smallest when the runs differ)."""
    return int(min(len(f) for f in frames.values()))


def _summary_row(name: str, dataset: str, metric: str, values: np.ndarray, strata: list[np.ndarray], n_images: int,
                 n_resamples: int, seed: int, confidence: float) -> dict:
    """Mean, SD and IQM over runs, each with its stratified bootstrap percentile interval."""
    by_stratum = [values[s] for s in strata]
    mean_low, mean_high = _interval(stratified_bootstrap(by_stratum, _mean_rows, n_resamples, seed), confidence)
    iqm_low, iqm_high = _interval(stratified_bootstrap(by_stratum, _iqm_rows, n_resamples, seed), confidence)
    return {"variant": name, "dataset": dataset, "metric": metric, "label": label(metric),
            "n_seeds": int(values.size), "n_images": n_images,
            "mean": float(values.mean()), "sd": float(values.std(ddof=1)) if values.size > 1 else None,
            "mean_low": mean_low, "mean_high": mean_high,
            "iqm": iqm(values), "iqm_low": iqm_low, "iqm_high": iqm_high,
            "values": [float(v) for v in values]}


# --------------------------------------------------------------------------- the comparison

def _check_request(runs: dict, reference: str, metrics, n_resamples: int, confidence: float,
                   n_bins: int) -> tuple[dict[str, Run], list[str], int]:
    """Runs loaded, metrics checked and n_bins as an int; LeukoError naming the bad argument."""
    where = "compare_variants"
    if not isinstance(runs, dict) or not runs:
        raise LeukoError(f"{where}: runs must be a non-empty mapping of variant name -> run")
    loaded = {str(k): v if isinstance(v, Run) else load_run(v) for k, v in runs.items()}
    if reference not in loaded:
        raise LeukoError(f"{where}: reference = {reference!r} is not one of the variants {list(loaded)}")
    metrics = list(metrics)
    bad = [m for m in metrics if m not in METRICS]
    if not metrics or bad or len(set(metrics)) != len(metrics):
        raise LeukoError(f"{where}: metrics = {metrics!r} must be distinct names from {list(METRICS)}")
    check_positive_int(where, "n_resamples", n_resamples)
    check_confidence(where, confidence)
    return loaded, metrics, check_positive_int(where, "n_bins", n_bins)


def _plan(runs: dict[str, Run], reference: str, datasets: list[str] | None) -> tuple[list[str], list[dict]]:
    """The datasets to compare and the skipped ones with their reasons.

    Explicit `datasets` must be evaluated by every run with shared seeds (else LeukoError from run_files.match's
    checks); without them every dataset that all runs evaluated with seeds shared with the reference is used.
    """
    ref = runs[reference]
    others = [n for n in runs if n != reference]
    have = {n: set(r.index["dataset"]) for n, r in runs.items()}
    if datasets is not None:
        datasets = [str(d) for d in datasets]
        if len(set(datasets)) != len(datasets):
            raise LeukoError(f"compare_variants: datasets = {datasets!r} lists a dataset twice")
        for d in datasets:
            for n in others:
                if not set(dataset_keys(runs[n], d)) & set(dataset_keys(ref, d)):
                    match(runs[n], ref, d)  # raises: no shared (split_seed, seed)
            dataset_keys(ref, d)
        return datasets, []
    chosen, skipped = [], []
    for d in _dataset_order(set().union(*have.values())):
        missing = [n for n in runs if d not in have[n]]
        if missing:
            skipped.append({"dataset": d, "variant": missing[0],
                            "reason": f"not evaluated by {', '.join(missing)}"})
            continue
        apart = [n for n in others
                 if not set(dataset_keys(runs[n], d)) & set(dataset_keys(ref, d))]
        if apart:
            skipped.append({"dataset": d, "variant": apart[0],
                            "reason": f"{', '.join(apart)} share(s) no (split_seed, seed) with {reference}"})
            continue
        chosen.append(d)
    return chosen, skipped


def _comparison(name: str, reference: str, dataset: str, pairs: list, boot: np.ndarray, metric: str,
                x: tuple[np.ndarray, list], y: tuple[np.ndarray, list], n_resamples: int, seed: int,
                confidence: float, n_bins: int) -> dict:
    """One row of `comparisons` before Holm: difference, interval, p, probability of improvement."""
    hib = HIGHER_IS_BETTER[metric]
    res = summarize_bootstrap(boot, observed_difference(pairs, metric, n_bins), metric, confidence,
                                      seed)
    (xv, xs), (yv, ys) = x, y
    nx = xv.size
    pi_boot = stratified_bootstrap([xv[s] for s in xs] + [yv[s] for s in ys],
                                   lambda v: _improvement_rows(v[:, :nx], v[:, nx:], hib), n_resamples, seed)
    pi_low, pi_high = _interval(pi_boot, confidence)
    sizes = sorted({p.n for p in pairs})
    return {"variant": name, "reference": reference, "dataset": dataset, "metric": metric,
            "label": label(metric), "higher_is_better": hib, "n_pairs": len(pairs),
            "n_images": int(sizes[0]), "difference": res.difference, "low": res.low, "high": res.high,
            "p_variant_better": res.p_a_better, "p_reference_better": res.p_b_better,
            "p": bootstrap_p(boot), "p_holm": None, "verdict": None,
            "p_improvement": probability_of_improvement(xv, yv, hib), "pi_low": pi_low, "pi_high": pi_high}


def _notes(runs: dict, reference: str, summary: list[dict], comparisons: list[dict], left_out: list[str],
           n_resamples: int, alpha: float) -> list[str]:
    """Plain sentences on what limits the numbers: few runs, one split seed, too few resamples, unmatched seeds."""
    notes = list(left_out)
    few = sorted({(r["variant"], r["dataset"], r["n_seeds"]) for r in summary if r["n_seeds"] < FEW_SEEDS})
    if few:
        listed = "; ".join(f"{v} on {d}: {n}" for v, d, n in few)
        notes.append(f"Few runs ({listed}): intervals over runs are rough with fewer than {FEW_SEEDS} seeds, "
                     f"and the probability of improvement moves in coarse steps.")
    if summary and all(r.index["split_seed"].nunique() == 1 for r in runs.values()):
        notes.append("Every run uses one split seed: the intervals over runs cover training seeds only, "
                     "not the choice of split.")
    outside = [f"{c['variant']} {c['label']} on {c['dataset']}" for c in comparisons
               if not c["low"] <= c["difference"] <= c["high"]]
    if outside:
        notes.append(f"The observed difference lies outside its bootstrap interval for {'; '.join(outside)}: "
                     f"the metric is biased in resamples (the ECE grows when images repeat), so read that "
                     f"interval with care.")
    seed_noise = [f"{c['variant']} {c['label']} on {c['dataset']} ({c['verdict']}; P(improvement) "
                  f"{c['p_improvement']:.2f} [{c['pi_low']:.2f}–{c['pi_high']:.2f}])" for c in comparisons
                  if c["verdict"] in ("better", "worse") and not c["beats_seed_noise"]]
    if seed_noise:
        notes.append(f"A verdict rests on the paired image bootstrap, which holds the trained models fixed; for "
                     f"{'; '.join(seed_noise)} the probability of improvement over pairs of runs still includes 0.5, "
                     f"so that change is not shown to beat the seed-to-seed variation: add seeds.")
    if comparisons and 2 / (n_resamples + 1) * len(comparisons) >= alpha:
        notes.append(f"With {n_resamples} resamples the smallest bootstrap p-value is {2 / (n_resamples + 1):.3g}, "
                     f"too large for Holm's adjustment over {len(comparisons)} comparisons to reach {alpha:g}: "
                     f"no verdict can be 'better' or 'worse'; use more resamples.")
    return notes


def compare_variants(runs: dict[str, Run], reference: str, datasets: list[str] | None = None,
                     metrics=METRICS, n_resamples: int = 9999, seed: int = 0, confidence: float = 0.95,
                     n_bins: int = 15) -> dict:
    """Every variant against `reference` on every dataset and metric, as plain JSON types (see the module doc).

    Rows are ordered variant, dataset, metric; `values` and per-run statistics follow (split_seed, seed) order.
    """
    runs, metrics, n_bins = _check_request(runs, reference, metrics, n_resamples, confidence, n_bins)
    chosen, skipped = _plan(runs, reference, datasets)
    alpha = round(1 - float(confidence), 12)  # 0.05, not 0.050000000000000044
    frames = {(n, d): load_predictions(r, d) for d in chosen for n, r in runs.items()}
    values = {key: _run_values(runs[key[0]], f, metrics, n_bins) for key, f in frames.items()}
    strata = {key: _strata(f) for key, f in frames.items()}
    summary, comparisons, left_out = [], [], []
    for name in runs:
        for d in chosen:
            for m in metrics:
                summary.append(_summary_row(name, d, m, values[(name, d)][m], strata[(name, d)],
                                            _n_images(frames[(name, d)]), n_resamples, seed, confidence))
    for name, run in runs.items():
        if name == reference:
            continue
        for d in chosen:
            pairs = match(run, runs[reference], d, frames[(name, d)], frames[(reference, d)])
            only_v, only_r = unmatched(run, runs[reference], d)
            if only_v or only_r:
                left_out.append(f"On '{d}' {name} and {reference} share {len(pairs)} (split_seed, seed); "
                                 f"{len(only_v) + len(only_r)} unmatched run(s) are left out of the paired "
                                 f"comparison but kept in the summaries.")
            boots = bootstrap_metrics(pairs, metrics, n_resamples, seed, n_bins)
            for m in metrics:
                comparisons.append(_comparison(name, reference, d, pairs, boots[m], m,
                                               (values[(name, d)][m], strata[(name, d)]),
                                               (values[(reference, d)][m], strata[(reference, d)]),
                                               n_resamples, seed, confidence, n_bins))
    for row, p_holm in zip(comparisons, holm([r["p"] for r in comparisons])):
        row["p_holm"] = float(p_holm)
        row["verdict"] = decide(row["difference"], row["p_holm"], alpha, row["higher_is_better"])
        row["beats_seed_noise"] = bool(row["pi_low"] > 0.5 or row["pi_high"] < 0.5)
    return {
        "reference": reference, "variants": list(runs), "datasets": chosen, "metrics": metrics,
        "confidence": float(confidence), "n_resamples": int(n_resamples), "seed": int(seed), "n_bins": n_bins,
        "adjustment": "Holm", "alpha": alpha, "n_comparisons": len(comparisons),
        "interval_method": INTERVAL_METHOD, "p_method": P_METHOD,
        "summary": summary, "comparisons": comparisons, "skipped": skipped,
        "notes": _notes(runs, reference, summary, comparisons, left_out, n_resamples, alpha),
    }


def variant_tables(result: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(summary rows, comparison rows) of a compare_variants result for CSV; per-run values joined by ';'."""
    summary = pd.DataFrame(result["summary"], columns=list(SUMMARY_COLUMNS))
    summary["values"] = [";".join(repr(v) for v in vals) for vals in summary["values"]]
    return summary, pd.DataFrame(result["comparisons"], columns=list(COMPARISON_COLUMNS))

