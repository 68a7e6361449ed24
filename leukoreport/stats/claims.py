"""Verdicts on a paper's claims from the rerun's evidence, one stated rule per kind (docs/claims.md):
reproduced, not reproduced (overstated or understated), inconclusive (with what would decide it), not comparable
(a recipe item the claim depends on differs) or not testable."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from leukoreport.base.errors import LeukoError
from leukoreport.base.metric_catalogue import higher_is_better
from leukoreport.config.claims import Claim, ClaimsFile
from leukoreport.stats.claim_rules import (
    MetricCheck,
    balance_table,
    class_images_needed,
    confusion_test,
    external_images_needed,
    metric_check,
    min_detectable_errors,
    overfitting_gap,
)
from leukoreport.stats.deviations import Deviation, deviation_text
from leukoreport.stats.intervals import wilson

__all__ = ["CLAIM_COLUMNS", "COMPARABLE_KINDS", "DIRECTIONS", "VERDICTS", "ClaimVerdict", "Evidence", "RunEvidence",
           "judge_claims", "verdict_rows"]

VERDICTS = ("reproduced", "not reproduced", "inconclusive", "not comparable", "not testable")
DIRECTIONS = ("overstated", "understated")
COMPARABLE_KINDS = ("metric", "per_class", "errors", "external")  # depend on the whole declared recipe by default
CLAIM_COLUMNS = ("id", "kind", "title", "text", "where", "claimed", "rerun", "low", "high", "seed_min", "seed_max",
                 "n_seeds", "verdict", "direction", "reason", "needs", "evidence")
_SCORES = ("precision", "recall", "f1")
_SCORE_LABEL = {"precision": "precision", "recall": "recall", "f1": "F1"}


@dataclass(frozen=True)
class RunEvidence:
    """One run (split seed, training seed): train.json, history.csv and metrics.json per dataset."""

    split_seed: int
    seed: int
    train: dict
    history: pd.DataFrame
    metrics: dict[str, dict]


@dataclass(frozen=True)
class Evidence:
    """Everything the rules read: the runs, external sets' provenance and domain AUC, the reproducibility check,
    the recipe deviations and the confidence level."""

    runs: tuple[RunEvidence, ...]
    relations: dict[str, str]
    domain_auc: dict[str, tuple[float, float, float] | None]
    reproducibility: dict | None
    deviations: tuple[Deviation, ...]
    confidence: float


@dataclass(frozen=True)
class ClaimVerdict:
    """One claim's verdict with the numbers it rests on (claims.csv and claims.json rows)."""

    id: str
    kind: str
    text: str
    where: str
    claimed: str
    claimed_value: float | None
    rerun: str
    rerun_value: float | None
    low: float | None
    high: float | None
    seed_min: float | None
    seed_max: float | None
    n_seeds: int
    verdict: str
    direction: str | None
    reason: str
    needs: str | None
    evidence: str
    deviations: tuple[str, ...] = ()
    title: str = ""  # a short name for the summary's table (the claims file's `title`; empty: use the text)


# ---------------------------------------------------------------- formatting

def _pct(x: float | None, digits: int = 1) -> str:
    return "–" if x is None else f"{100 * x:.{digits}f}%"


def _claimed_pct(x: float) -> str:
    """A claimed share to at most two decimals: 0.9947 -> 99.47%, 2/375 -> 0.53%, 1.0 -> 100%."""
    return f"{100 * x:.2f}".rstrip("0").rstrip(".") + "%"


def _num(x: float | None, proportion: bool) -> str:
    if x is None:
        return "–"
    return _pct(x) if proportion else f"{x:.3g}"


def _range(check: MetricCheck, proportion: bool) -> str:
    """'91.2% [87.9–93.7], seeds 90.1–92.0' (one run: '91.2%, one run')."""
    def bare(x: float | None) -> str:
        return _num(x, proportion).rstrip("%")

    mean = _num(check.mean, proportion)
    if check.low is None:
        return f"{mean}, one run"
    lo, hi = min(check.values), max(check.values)
    return f"{mean} [{bare(check.low)}–{bare(check.high)}], seeds {bare(lo)}–{bare(hi)}"


def _lookup(metrics: dict, dotted: str) -> Any:
    node: Any = metrics
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _base(claim: Claim, evidence: Evidence, claimed: str, where: str, **values: Any) -> ClaimVerdict:
    fields: dict[str, Any] = {"claimed_value": None, "rerun": "", "rerun_value": None, "low": None, "high": None,
                              "seed_min": None, "seed_max": None, "n_seeds": len(evidence.runs), "direction": None,
                              "needs": None, "reason": "", "verdict": "not testable"}
    fields.update(values)
    return ClaimVerdict(id=claim.id, kind=claim.kind, text=claim.text, where=claim.where, claimed=claimed,
                        evidence=where, title=str(claim.fields.get("title") or ""), **fields)


def _missing(claim: Claim, evidence: Evidence, dataset: str, claimed: str) -> ClaimVerdict | None:
    """'not testable' when no run has metrics for `dataset`, else None."""
    if evidence.runs and all(dataset in r.metrics for r in evidence.runs):
        return None
    what = "no runs" if not evidence.runs else f"no metrics for '{dataset}' in every run"
    return _base(claim, evidence, claimed, "—", reason=f"The rerun has {what} (config external, seeds).")


def _from_check(check: MetricCheck, proportion: bool) -> dict:
    return {"claimed_value": check.claimed, "rerun": _range(check, proportion), "rerun_value": check.mean,
            "low": check.low, "high": check.high, "seed_min": min(check.values), "seed_max": max(check.values),
            "verdict": check.verdict, "direction": check.direction, "needs": check.needs}


def _check_reason(check: MetricCheck, name: str, proportion: bool) -> str:
    claimed = _claimed_pct(check.claimed) if proportion else f"{check.claimed:.4g}"
    tol = f" ± {_num(check.tolerance, proportion)} tolerance" if check.tolerance else ""
    if check.verdict == "not reproduced":
        side = "above" if check.claimed > check.mean else "below"
        return (f"The claimed {name} {claimed} lies {side} the range where a rerun on {check.n} images is expected "
                f"({_num(check.low, proportion)}–{_num(check.high, proportion)}{tol}).")
    if check.half is None:
        return f"One run cannot show the seed-to-seed spread, so the claimed {name} {claimed} cannot be judged."
    if check.verdict == "reproduced":
        return (f"The claimed {name} {claimed} lies within the expected range of a rerun on {check.n} images, which "
                f"is no wider (±{_num(check.half, proportion)}) than the claim's own precision "
                f"(±{_num(check.target, proportion)}).")
    return (f"The claimed {name} {claimed} lies within the expected range of a rerun on {check.n} images, but that "
            f"range (±{_num(check.half, proportion)}) is wider than the claim's own precision "
            f"(±{_num(check.target, proportion)}).")


# ---------------------------------------------------------------- rules per kind

def _metric(claim: Claim, ev: Evidence) -> ClaimVerdict:
    f = claim.fields
    dataset, key, value = f["dataset"], f["metric"], float(f["value"])
    values = [_lookup(r.metrics.get(dataset, {}), key) for r in ev.runs]
    proportion = 0 <= value <= 1 and all(isinstance(v, (int, float)) and 0 <= v <= 1 for v in values)
    claimed = (_claimed_pct(value) if proportion else f"{value:.4g}") + (f" on {f['n']} images" if "n" in f else "")
    where = f"summary/seeds.csv ({dataset}); splits/*/seeds/*/{dataset}/metrics.json"
    if (gone := _missing(claim, ev, dataset, claimed)) is not None:
        return gone
    if any(v is None for v in values):
        return _base(claim, ev, claimed, where, reason=f"metrics.json of '{dataset}' has no key {key}.")
    n = int(f.get("n") or round(np.mean([r.metrics[dataset]["n"] for r in ev.runs])))
    check = metric_check(value, values, n, float(f.get("tolerance", 0.0)), ev.confidence,
                         higher_is_better(key.split(".")[-1]), proportion)
    return _base(claim, ev, claimed, where, reason=_check_reason(check, key.replace("_", " "), proportion),
                 **_from_check(check, proportion))


def _per_class(claim: Claim, ev: Evidence) -> ClaimVerdict:
    f = claim.fields
    dataset, classes, tol = f["dataset"], f["classes"], float(f.get("tolerance", 0.0))
    cells = [(c, s, float(cell[s]), int(cell["support"])) for c, cell in classes.items() for s in _SCORES if s in cell]
    claimed_values = [v for *_, v, _ in cells]
    claimed = (f"{len(cells)} values ({len(classes)} classes), {_claimed_pct(min(claimed_values))}–"
               f"{_claimed_pct(max(claimed_values))}" if cells else "no values")
    where = f"summary/seeds.csv (recall per class); splits/*/seeds/*/{dataset}/metrics.json (per_class)"
    if (gone := _missing(claim, ev, dataset, claimed)) is not None:
        return gone
    checks = []
    for cls, score, value, support in cells:
        values = [_lookup(r.metrics[dataset], f"per_class.{cls}.{score}") for r in ev.runs]
        if any(v is None for v in values):
            return _base(claim, ev, claimed, where, reason=f"The rerun has no {score} of class '{cls}' on '{dataset}'.")
        checks.append((f"{cls} {_SCORE_LABEL[score]}", metric_check(value, values, support, tol, ev.confidence)))
    if not checks:
        return _base(claim, ev, claimed, where, reason="The claim lists no precision, recall or F1.")
    failed = [(name, c) for name, c in checks if c.verdict == "not reproduced"]
    open_ = [(name, c) for name, c in checks if c.verdict == "inconclusive"]
    means = [c.mean for _, c in checks]
    rerun = f"{_pct(min(means))}–{_pct(max(means))} (means over seeds of the {len(checks)} values)"
    out = {"rerun": rerun, "seed_min": min(min(c.values) for _, c in checks),
           "seed_max": max(max(c.values) for _, c in checks)}
    if failed:
        over = sum(c.direction == "overstated" for _, c in failed)
        listed = "; ".join(f"{name} {_claimed_pct(c.claimed)} vs {_range(c, True)}" for name, c in failed[:4])
        more = f" and {len(failed) - 4} more" if len(failed) > 4 else ""
        return _base(claim, ev, claimed, where, verdict="not reproduced",
                     direction="overstated" if over * 2 >= len(failed) else "understated",
                     reason=f"{len(failed)} of {len(checks)} values lie outside the rerun's expected range: "
                            f"{listed}{more}.", **out)
    if open_:
        worst = max(open_, key=lambda item: (item[1].half or np.inf) / max(item[1].target, 1e-12))
        names = ", ".join(name for name, _ in open_[:6]) + (f" and {len(open_) - 6} more" if len(open_) > 6 else "")
        return _base(claim, ev, claimed, where, verdict="inconclusive", needs=worst[1].needs,
                     reason=f"No value lies outside the rerun's expected range, but for {names} that range is wider "
                            "than the claim's own precision.", **out)
    return _base(claim, ev, claimed, where, verdict="reproduced",
                 reason=f"All {len(checks)} values lie within the rerun's expected range, each no wider than the "
                        "claim's own precision.", **out)


def _summed_confusion(ev: Evidence, dataset: str) -> tuple[list[np.ndarray], list[str]]:
    first = ev.runs[0].metrics[dataset]["confusion_matrix"]
    labels = list(first["labels"])
    mats = []
    for r in ev.runs:
        cm = r.metrics[dataset]["confusion_matrix"]
        if list(cm["labels"]) != labels:
            raise LeukoError(f"metrics.json of '{dataset}' (split {r.split_seed}, seed {r.seed}): classes "
                             f"{cm['labels']} differ from {labels}")
        mats.append(np.asarray(cm["matrix"], dtype=np.int64))
    return mats, labels


def _errors(claim: Claim, ev: Evidence) -> ClaimVerdict:
    f = claim.fields
    dataset, count, n = f["dataset"], int(f["count"]), int(f["n"])
    pairs = [(p["label"], p["predicted"]) for p in f.get("pairs") or []]
    names = ", ".join(f"{a} → {b}" for a, b in pairs)
    claimed = f"{count} of {n} ({_claimed_pct(count / n)})" + (f": {names}" if names else "")
    where = f"splits/*/seeds/*/{dataset}/metrics.json (confused_pairs); summary/confusion_test.png"
    if (gone := _missing(claim, ev, dataset, claimed)) is not None:
        return gone
    rates = [1 - float(r.metrics[dataset]["accuracy"]) for r in ev.runs]
    check = metric_check(count / n, rates, n, float(f.get("tolerance", 0.0)), ev.confidence, higher_is_better=False)
    mats, labels = _summed_confusion(ev, dataset)
    total = np.sum(mats, axis=0)
    index = {c: i for i, c in enumerate(labels)}
    errors = int(total.sum() - np.trace(total))
    inside = sum(int(total[index[a], index[b]]) for a, b in set(pairs) if a in index and b in index)
    out = _from_check(check, True)
    share = inside / errors if errors else None
    pattern = (f" Of the rerun's {errors} errors (summed over {len(ev.runs)} runs), {inside} "
               f"({_pct(share, 0)}) fall in the claimed pairs." if pairs and errors else "")
    out["rerun"] += f"; {errors} errors over {len(ev.runs)} runs" + (f", {_pct(share, 0)} in the claimed pairs"
                                                                     if pairs and errors else "")
    reason = _check_reason(check, "error rate", True) + pattern
    if check.verdict == "reproduced" and share is not None and share < 0.5:
        out.update(verdict="not reproduced", direction="overstated")
        reason += " Fewer than half fall in them, so the claimed pattern of errors does not recur."
    return _base(claim, ev, claimed, where, reason=reason, **out)


def _confusion(claim: Claim, ev: Evidence) -> ClaimVerdict:
    dataset = claim.fields["dataset"]
    claimed = "no systematic confusion between classes"
    where = f"summary/confusion_test.png; splits/*/seeds/*/{dataset}/metrics.json (confusion_matrix)"
    if (gone := _missing(claim, ev, dataset, claimed)) is not None:
        return gone
    mats, labels = _summed_confusion(ev, dataset)
    table = confusion_test(mats, labels, ev.confidence)
    errors = int(table["count"].sum())
    alpha, m = 1 - ev.confidence, len(table)
    best = table.sort_values(["p_holm", "count"], ascending=[True, False]).iloc[0]
    rerun = (f"{errors} errors over {len(ev.runs)} runs; most frequent pair {best['true']} → {best['predicted']}: "
             f"{best['count']} of {best['errors_of_true']} (Holm p = {best['p_holm']:.2g})" if errors
             else f"no errors over {len(ev.runs)} runs")
    out = {"rerun": rerun, "rerun_value": float(table["systematic"].sum())}
    systematic = table[table["systematic"]]
    if len(systematic):
        listed = "; ".join(f"{r['true']} → {r['predicted']} ({r['count']} of {r['errors_of_true']} errors of "
                           f"{r['true']}, Holm p = {r['p_holm']:.2g}, in {r['runs_with']} of {len(ev.runs)} runs)"
                           for _, r in systematic.iterrows())
        return _base(claim, ev, claimed, where, verdict="not reproduced", direction="overstated",
                     reason=f"Systematic confusion: {listed}.", **out)
    detectable = [e for e in table.groupby("true")["errors_of_true"].first()
                  if len(labels) > 2 and (1 / (len(labels) - 1)) ** e < alpha / m]
    if detectable:
        return _base(claim, ev, claimed, where, verdict="reproduced",
                     reason=f"No pair of classes is confused more often than errors spread evenly would give "
                            f"(binomial test, Holm over {m} pairs, α = {alpha:g}), and at least one class had enough "
                            "errors for such a pair to show.", **out)
    need = min_detectable_errors(len(labels), ev.confidence)
    return _base(claim, ev, claimed, where, verdict="inconclusive",
                 needs=(f"at least {need} errors in one class to detect a systematic pair" if need else
                        "at least three classes"),
                 reason=f"No class has enough errors ({int(table['errors_of_true'].max())} at most) for any pair to "
                        f"reach significance after Holm over {m} pairs.", **out)


def _overfitting(claim: Claim, ev: Evidence) -> ClaimVerdict:
    tol = float(claim.fields.get("tolerance", 0.1))
    claimed = f"validation − training loss ≤ {tol:g} at the restored epoch"
    where = "summary/curves.png; splits/*/seeds/*/history.csv and train.json"
    if not ev.runs:
        return _base(claim, ev, claimed, where, reason="The rerun has no runs.")
    gaps = [overfitting_gap(r.history, r.train) for r in ev.runs]
    above = sum(g > tol for g in gaps)
    out = {"rerun": f"gap {np.mean(gaps):.3f} (mean), seeds {min(gaps):.3f}–{max(gaps):.3f}",
           "rerun_value": float(np.mean(gaps)), "seed_min": min(gaps), "seed_max": max(gaps), "claimed_value": tol}
    text = (f"Validation − training loss at the restored epoch of the last phase exceeds {tol:g} in {above} of "
            f"{len(gaps)} runs.")
    if above == 0:
        return _base(claim, ev, claimed, where, verdict="reproduced", reason=text, **out)
    if above == len(gaps):
        return _base(claim, ev, claimed, where, verdict="not reproduced", direction="overstated", reason=text, **out)
    return _base(claim, ev, claimed, where, verdict="inconclusive", needs="more seeds (the runs disagree)",
                 reason=text, **out)


def _balance(claim: Claim, ev: Evidence) -> ClaimVerdict:
    dataset, tol = claim.fields["dataset"], float(claim.fields.get("tolerance", 0.05))
    claimed = f"no class's recall more than {_pct(tol, 0)} below the others'"
    where = "summary/seeds.csv (recall per class)"
    if (gone := _missing(claim, ev, dataset, claimed)) is not None:
        return gone
    correct: dict[str, int] = {}
    support: dict[str, int] = {}
    for r in ev.runs:
        for cls, cell in r.metrics[dataset]["per_class"].items():
            correct[cls] = correct.get(cls, 0) + int(cell["correct"])
            support[cls] = support.get(cls, 0) + int(cell["support"])
    per_split = max(1, round(len(ev.runs) / len({r.split_seed for r in ev.runs})))
    table = balance_table(correct, support, per_split, ev.confidence, tol)
    worst = table.sort_values("difference").iloc[0]
    out = {"rerun": f"lowest recall {worst['class']} {_pct(worst['recall'])} vs others {_pct(worst['others_recall'])}"
                    f" (difference {_pct(worst['difference'])} [{_pct(worst['low'])}–{_pct(worst['high'])}])",
           "rerun_value": float(worst["difference"]), "low": float(worst["low"]), "high": float(worst["high"]),
           "claimed_value": -tol}
    weak = table[table["weak"]]
    if len(weak):
        listed = "; ".join(f"{r['class']} {_pct(r['recall'])} vs {_pct(r['others_recall'])} "
                           f"[{_pct(r['low'])}–{_pct(r['high'])}]" for _, r in weak.iterrows())
        return _base(claim, ev, claimed, where, verdict="not reproduced", direction="overstated",
                     reason=f"Recall of {listed} is more than {_pct(tol, 0)} below the other classes'.", **out)
    if table["clear"].all():
        return _base(claim, ev, claimed, where, verdict="reproduced",
                     reason=f"For every class the interval of its recall minus the others' stays above "
                            f"−{_pct(tol, 0)}.", **out)
    open_ = table[~table["clear"]]
    sizes = [class_images_needed(r, len(table), ev.confidence, tol) for _, r in open_.iterrows()]
    size = max((s for s in sizes if s), default=None)
    return _base(claim, ev, claimed, where, verdict="inconclusive",
                 needs=f"a test set of about {size:,} images per class" if size else "a much larger test set",
                 reason=f"The interval for {', '.join(open_['class'])} reaches below −{_pct(tol, 0)} without lying "
                        "wholly below it.", **out)


def _external(claim: Claim, ev: Evidence) -> ClaimVerdict:
    f = claim.fields
    dataset, correct, total = f["dataset"], int(f["correct"]), int(f["total"])
    low, high = wilson(correct, total, ev.confidence)
    claimed = f"{correct}/{total} ({_claimed_pct(correct / total)}; Wilson {_pct(low)}–{_pct(high)})"
    where = "summary/external.csv; summary/validity.csv (domain AUC)"
    if (gone := _missing(claim, ev, dataset, claimed)) is not None:
        return gone
    relation = ev.relations.get(dataset, "provenance not declared")
    present = {c for r in ev.runs for c in r.metrics[dataset].get("classes_present", [])}
    what = f"{total} images" + ((" of one class" if len(present) == 1 else f" of {len(present)} classes")
                                if present else "")
    size = f"{what}; {correct}/{total} is consistent with a true accuracy as low as {_pct(low)}"
    values = [float(r.metrics[dataset]["accuracy"]) for r in ev.runs]
    check = metric_check(correct / total, values, total, float(f.get("tolerance", 0.0)), ev.confidence)
    out = _from_check(check, True)
    if f.get("generalises_to") == "new data sources" and relation != "other source":
        why = (f"its provenance is not declared (config external.{dataset}.source)"
               if relation == "provenance not declared"
               else "it comes from the training source")
        reason = f"{size[0].upper()}{size[1:]}; {why}, so it cannot show generalisation to new data sources"
        auc = ev.domain_auc.get(dataset)
        if auc is not None and auc[1] <= 0.5 <= auc[2]:
            reason += (f"; the set is not told apart from the training images (domain AUC {auc[0]:.2f} "
                       f"[{auc[1]:.2f}–{auc[2]:.2f}])")
        out.update(verdict="inconclusive", direction=None,
                   needs=f"at least {external_images_needed(ev.confidence)} images from another laboratory, "
                         "all classes")
        return _base(claim, ev, claimed, where, reason=reason + ".", **out)
    reason = f"{size[0].upper()}{size[1:]}. " + _check_reason(check, "accuracy", True)
    return _base(claim, ev, claimed, where, reason=reason, **out)


def _reproducibility(claim: Claim, ev: Evidence) -> ClaimVerdict:
    claimed = "the same seed gives the same result"
    rep = ev.reproducibility
    if rep is None:
        return _base(claim, ev, claimed, "—", reason="reproducibility_check is off, so no run was repeated.")
    where = f"splits/{rep.get('split_seed')}/reproducibility/reproducibility.json"
    run = f"split seed {rep.get('split_seed')}, seed {rep.get('seed')}"
    same = bool(rep.get("identical_predictions")) and bool(rep.get("identical_weights"))
    rerun = ("identical predictions and weights" if same else
             f"predictions differ by up to {float(rep.get('max_probability_difference', 0)):.2g}; "
             f"{rep.get('n_tensors_different')} of {rep.get('n_tensors')} weight tensors differ")
    out = {"rerun": rerun, "n_seeds": 1}
    if same:
        return _base(claim, ev, claimed, where, verdict="reproduced",
                     reason=f"Training {run} a second time on this machine gives bit-identical test predictions and "
                            f"all {rep.get('n_tensors')} weight tensors.", **out)
    return _base(claim, ev, claimed, where, verdict="not reproduced", direction="overstated",
                 reason=f"Training {run} a second time on this machine changes the result: test probabilities differ "
                        f"by up to {float(rep.get('max_probability_difference', 0)):.2g}, "
                        f"{rep.get('n_tensors_different')} of {rep.get('n_tensors')} weight tensors differ (by up to "
                        f"{float(rep.get('max_weight_difference', 0)):.2g}).", **out)


def _untestable(claim: Claim, ev: Evidence) -> ClaimVerdict:
    return _base(claim, ev, "—", "—", reason=" ".join(str(claim.fields["reason"]).split()), n_seeds=0)


_RULES = {"metric": _metric, "per_class": _per_class, "errors": _errors, "confusion": _confusion,
          "overfitting": _overfitting, "balance": _balance, "external": _external,
          "reproducibility": _reproducibility, "untestable": _untestable}


def _dependencies(claim: Claim, claims: ClaimsFile, deviations: tuple[Deviation, ...]) -> list[Deviation]:
    """The differing items the claim depends on: its depends_on (an item or a prefix such as 'phases'), else for
    COMPARABLE_KINDS every declared recipe item (software only when listed)."""
    listed = claim.fields.get("depends_on")
    if listed is None:
        if claim.kind not in COMPARABLE_KINDS:
            return []
        chosen = [d for d in deviations if d.item not in claims.software]
    else:
        chosen = [d for d in deviations if any(d.item == k or d.item.startswith(k + ".") for k in listed)]
    return [d for d in chosen if d.status == "different"]


def _judge(claim: Claim, claims: ClaimsFile, ev: Evidence) -> ClaimVerdict:
    verdict = _RULES[claim.kind](claim, ev)
    differing = _dependencies(claim, claims, ev.deviations)
    if not differing or verdict.verdict == "not testable":
        return verdict
    if claim.kind == "external" and claim.fields.get("generalises_to") == "new data sources" and \
            ev.relations.get(claim.fields["dataset"], "provenance not declared") != "other source":
        return replace(verdict, deviations=tuple(deviation_text(d) for d in differing))
    texts = tuple(deviation_text(d) for d in differing)
    rerun = f" The rerun gives {verdict.rerun}." if verdict.rerun else ""
    return replace(verdict, verdict="not comparable", direction=None, needs=None, deviations=texts,
                   reason=f"The rerun deviates from the paper's recipe in what the claim depends on: "
                          f"{'; '.join(texts)}.{rerun}")


def judge_claims(claims: ClaimsFile, evidence: Evidence) -> list[ClaimVerdict]:
    """One verdict per claim, in file order (docs/claims.md gives each rule)."""
    return [_judge(claim, claims, evidence) for claim in claims.claims]


def verdict_rows(verdicts) -> list[dict]:
    """claims.csv rows: CLAIM_COLUMNS of each verdict."""
    return [{k: asdict(v)[k] for k in CLAIM_COLUMNS} for v in verdicts]
