"""The computations behind the claim verdicts (docs/claims.md gives each formula): the metric rule's prediction
interval and what would decide it, the confusion test, the overfitting gap and the class-balance intervals."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from leukoreport.base.errors import LeukoError
from leukoreport.stats.intervals import newcombe_difference, wilson
from leukoreport.stats.verdicts import holm

__all__ = ["MAX_RUNS", "MetricCheck", "balance_table", "binomial_variance", "class_images_needed", "confusion_test",
           "external_images_needed", "metric_check", "min_detectable_errors", "overfitting_gap", "t_quantile",
           "wilson_half"]

MAX_RUNS = 50  # the seed search for "needs" stops here


@dataclass(frozen=True)
class MetricCheck:
    """The metric rule applied to one claimed value: the rerun's prediction interval and the decision."""

    claimed: float
    n: int
    tolerance: float
    values: tuple[float, ...]
    mean: float
    sd: float
    half: float | None       # q * sigma (None with one run)
    low: float | None
    high: float | None
    target: float            # max(tolerance, the claim's own Wilson half-width)
    claim_half: float | None
    verdict: str             # reproduced | not reproduced | inconclusive
    direction: str | None
    needs: str | None


def t_quantile(confidence: float, runs: int) -> float:
    """Two-sided Student t quantile with runs - 1 degrees of freedom (runs >= 2)."""
    return float(stats.t.ppf(0.5 + confidence / 2, runs - 1))


def wilson_half(value: float, n: int, confidence: float) -> float:
    """Half the width of the Wilson interval of round(value * n) successes of n."""
    low, high = wilson(min(n, max(0, round(value * n))), n, confidence)
    return (high - low) / 2


def binomial_variance(mean: float, n: int) -> float:
    """mean(1 - mean)/n with mean kept within [1/(2n), 1 - 1/(2n)], so that it never collapses at 0 or 1."""
    p = min(max(mean, 0.5 / n), 1 - 0.5 / n)
    return p * (1 - p) / n


def _half(sd: float, runs: int, b: float, confidence: float) -> float:
    return t_quantile(confidence, runs) * math.sqrt(sd * sd * (1 + 1 / runs) + b)


def _needs(sd: float, runs: int, b_per_n: float, n: int, target: float, confidence: float) -> str:
    """More seeds, else a larger claimed set, else a wider tolerance: what makes the half-width reach `target`."""
    if runs < 2:
        return "at least one more seed (one run shows no seed-to-seed spread)"
    for more in range(runs + 1, MAX_RUNS + 1):
        if _half(sd, more, b_per_n / n, confidence) <= target:
            return f"about {more - runs} more seed{'s' if more - runs > 1 else ''}"
    for k in (runs, MAX_RUNS):
        room = (target / t_quantile(confidence, k)) ** 2 - sd * sd * (1 + 1 / k)
        if room > 0:
            images = math.ceil(b_per_n / room)
            seeds = "" if k == runs else f" and about {k - runs} more seeds"
            return f"a test set of at least {images:,} images{seeds}"
    spread = t_quantile(confidence, MAX_RUNS) * sd * math.sqrt(1 + 1 / MAX_RUNS)
    return f"a tolerance above {spread:.3g}: the seed-to-seed spread alone gives ±{spread:.3g}"


def metric_check(claimed: float, values, n: int, tolerance: float = 0.0, confidence: float = 0.95,
                 higher_is_better: bool = True, proportion: bool = True) -> MetricCheck:
    """The metric rule: a run on n images falls in mean ± q·sigma, sigma = sqrt(s²(1 + 1/k) + p(1 - p)/n); claimed
    outside (± tolerance) -> not reproduced; inside and q·sigma <= max(tolerance, Wilson half-width of the claim)
    -> reproduced; else inconclusive with what would decide it."""
    x = np.asarray(list(values), dtype=float)
    if x.size == 0 or not np.all(np.isfinite(x)):
        raise LeukoError(f"metric_check: needs at least one finite rerun value, got {x.tolist()}")
    if n < 1:
        raise LeukoError(f"metric_check: n = {n} must be at least 1")
    k = int(x.size)
    mean = float(x.mean())
    sd = float(x.std(ddof=1)) if k > 1 else 0.0
    b_per_n = binomial_variance(mean, n) * n if proportion else 0.0
    claim_half = wilson_half(claimed, n, confidence) if proportion and 0 <= claimed <= 1 else None
    target = max(tolerance, claim_half or 0.0)
    half = low = high = None
    verdict, direction, needs = "inconclusive", None, None
    if k >= 2:
        half = _half(sd, k, b_per_n / n, confidence)
        low, high = mean - half, mean + half
        if proportion:
            low, high = max(0.0, low), min(1.0, high)
        if claimed > mean + half + tolerance or claimed < mean - half - tolerance:
            above = claimed > mean
            verdict = "not reproduced"
            direction = "overstated" if above == higher_is_better else "understated"
        elif half <= target:
            verdict = "reproduced"
    if verdict == "inconclusive":
        needs = _needs(sd, k, b_per_n, n, target, confidence)
    return MetricCheck(claimed=float(claimed), n=int(n), tolerance=float(tolerance), values=tuple(map(float, x)),
                       mean=mean, sd=sd, half=half, low=low, high=high, target=target, claim_half=claim_half,
                       verdict=verdict, direction=direction, needs=needs)


def min_detectable_errors(n_classes: int, confidence: float) -> int | None:
    """Smallest error count e of one class whose most lopsided split gives p = (1/(K-1))^e below alpha / K(K-1)."""
    if n_classes < 3:
        return None
    alpha, pairs = 1 - confidence, n_classes * (n_classes - 1)
    return math.floor(math.log(alpha / pairs) / math.log(1 / (n_classes - 1))) + 1


def confusion_test(matrices: list[np.ndarray], classes: list[str], confidence: float = 0.95) -> pd.DataFrame:
    """Per ordered pair (true a, predicted b), confusion summed over runs: count, e_a (errors of a), one-sided
    binomial p of count against e_a spread evenly over the K - 1 other classes, Holm-adjusted p, runs in which
    the pair occurs, and whether it is systematic (Holm p < alpha and in at least half the runs)."""
    stack = np.asarray(matrices, dtype=np.int64)
    k = len(classes)
    if stack.ndim != 3 or stack.shape[1:] != (k, k) or k < 2:
        raise LeukoError(f"confusion_test: expected runs of {k} x {k} matrices, got shape {stack.shape}")
    total = stack.sum(axis=0)
    rows = []
    for a in range(k):
        errors = int(total[a].sum() - total[a, a])
        for b in range(k):
            if a == b:
                continue
            count = int(total[a, b])
            p = float(stats.binom.sf(count - 1, errors, 1 / (k - 1))) if errors > 0 else 1.0
            rows.append({"true": classes[a], "predicted": classes[b], "count": count, "errors_of_true": errors,
                         "p": p, "runs_with": int((stack[:, a, b] > 0).sum())})
    table = pd.DataFrame(rows)
    table["p_holm"] = holm(table["p"].to_numpy())
    alpha = 1 - confidence
    table["systematic"] = (table["p_holm"] < alpha) & (table["runs_with"] >= len(stack) / 2) & (table["count"] > 0)
    return table


def overfitting_gap(history: pd.DataFrame, train: dict) -> float:
    """valid_loss - train_loss at the restored best epoch of the last phase (train.json phases[-1].best_epoch)."""
    phases = train.get("phases") or []
    if not phases or "best_epoch" not in phases[-1]:
        raise LeukoError("train.json: phases[-1].best_epoch missing")
    best = int(phases[-1]["best_epoch"])
    row = history[history["epoch"] == best]
    if row.empty:
        raise LeukoError(f"history.csv: no row for the restored epoch {best} (train.json phases[-1].best_epoch)")
    return float(row["valid_loss"].iloc[0] - row["train_loss"].iloc[0])


def balance_table(correct: dict[str, int], support: dict[str, int], runs_per_split: int = 1,
                  confidence: float = 0.95, tolerance: float = 0.05) -> pd.DataFrame:
    """Per class: pooled recall against the pooled recall of the other classes, counts divided by the training
    seeds per split (one test set counts once), and the Newcombe hybrid-score interval of the difference;
    `weak`: high < -tolerance; `clear`: low >= -tolerance."""
    if runs_per_split < 1:
        raise LeukoError(f"balance_table: runs_per_split = {runs_per_split} must be at least 1")
    names = [c for c in support if support[c] > 0]
    rows = []
    for cls in names:
        k1, n1 = round(correct[cls] / runs_per_split), round(support[cls] / runs_per_split)
        k2 = round(sum(correct[c] for c in names if c != cls) / runs_per_split)
        n2 = round(sum(support[c] for c in names if c != cls) / runs_per_split)
        if n2 == 0:
            continue
        low, high = newcombe_difference(k1, n1, k2, n2, confidence)
        rows.append({"class": cls, "correct": k1, "support": n1, "recall": k1 / n1, "others_correct": k2,
                     "others_support": n2, "others_recall": k2 / n2, "difference": k1 / n1 - k2 / n2,
                     "low": low, "high": high, "weak": high < -tolerance, "clear": low >= -tolerance})
    return pd.DataFrame(rows, columns=["class", "correct", "support", "recall", "others_correct", "others_support",
                                       "others_recall", "difference", "low", "high", "weak", "clear"])


def class_images_needed(row: dict, n_classes: int, confidence: float, tolerance: float) -> int | None:
    """Roughly the test images per class for the difference's interval to clear -tolerance one way or the other:
    m >= z² (p1(1-p1) + p2(1-p2)/(K-1)) / (d + tolerance)² (normal approximation, p kept off 0 and 1)."""
    gap = row["difference"] + tolerance
    if gap == 0:
        return None
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    n1, n2 = row["support"], row["others_support"]
    var = binomial_variance(row["recall"], n1) * n1 + binomial_variance(row["others_recall"], n2) * n2 / (n_classes - 1)
    return math.ceil(z * z * var / gap ** 2)


def external_images_needed(confidence: float = 0.95, accuracy: float = 0.95, half_width: float = 0.05) -> int:
    """Smallest set size N whose Wilson interval at `accuracy` (round(accuracy N) correct) is at most ± half_width."""
    for n in range(2, 100_000):
        if wilson_half(accuracy, n, confidence) <= half_width:
            return n
    raise LeukoError("external_images_needed: no set size up to 100,000 reaches the half-width")
