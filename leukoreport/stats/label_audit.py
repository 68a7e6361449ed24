"""Suspected label errors from held-out class probabilities (cleanlab's confident learning); nothing is relabelled."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from leukoreport.base.errors import LeukoError
from leukoreport.stats.metrics import prob_columns

__all__ = ["ARGMAX_RULE", "INFORMATIVE_RULE", "PRUNING", "audit_informative", "audit_summary", "find_suspects"]

ARGMAX_RULE = "predicted_neq_given"  # argmax differs from the given label with probability >= 0.5
PRUNING = ("prune_by_noise_rate", "prune_by_class", "both")
INFORMATIVE_RULE = ("the audit is informative only where the seed ensemble beats the majority baseline: the low end "
                    "of the interval of its gain over always answering the set's commonest class is above 0")


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _points(x: float) -> str:
    return f"{100 * x:+.1f}".replace("-", "\u2212")


def audit_informative(metrics: dict, where: str = "label audit") -> tuple[bool, str]:
    """(informative, reason) of a label audit from the seed ensemble's metrics.json (INFORMATIVE_RULE): confident
    learning on a model that does not beat always answering one class cannot tell label errors from model errors."""
    base = metrics.get("baselines")
    keys = ("majority_class", "majority_accuracy", "gain", "gain_low", "gain_high")
    if not isinstance(base, dict) or any(base.get(k) is None for k in keys) or metrics.get("accuracy") is None:
        raise LeukoError(f"{where}: metrics.json lacks 'accuracy' or baselines keys {list(keys)}")
    acc, maj = float(metrics["accuracy"]), float(base["majority_accuracy"])
    versus = f"always answering '{base['majority_class']}' (accuracy {_pct(acc)} vs {_pct(maj)}"
    gain = f", gain {_points(base['gain'])} pp [{_points(base['gain_low'])} to {_points(base['gain_high'])}])"
    if float(base["gain_low"]) > 0:
        return True, f"the seed ensemble beats {versus}{gain}"
    if acc > maj:
        return False, (f"not informative: the seed ensemble is not shown to beat {versus}{gain}, so confident "
                       "learning cannot separate label errors from model errors")
    return False, (f"not informative: the seed ensemble does not beat {versus}), so confident learning cannot "
                   "separate label errors from model errors")


def _argmax_rule(given: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Mask of rows whose most probable class is not the given one, with probability at least 0.5."""
    return (probs.argmax(axis=1) != given) & (probs.max(axis=1) >= 0.5)


def _probabilities(pred: pd.DataFrame, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Given-label indices and row-normalised probabilities; LeukoError on bad columns or labels."""
    columns = prob_columns(classes)
    missing = [c for c in ["path", "label", *columns] if c not in pred.columns]
    if missing:
        raise LeukoError(f"label audit: predictions lack column(s) {missing}")
    if pred.empty:
        raise LeukoError("label audit: no rows")
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted({str(x) for x in pred["label"]} - set(index))
    if unknown:
        raise LeukoError(f"label audit: label '{unknown[0]}' is not among the classes {classes}")
    probs = pred[columns].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    sums = probs.sum(axis=1, keepdims=True)
    if np.isnan(probs).any() or (probs < 0).any() or (sums <= 0).any():
        raise LeukoError("label audit: probabilities must be non-negative numbers with a positive row sum")
    return np.array([index[str(x)] for x in pred["label"]]), probs / sums


def _cleanlab(given: np.ndarray, probs: np.ndarray, filter_by: str, min_examples_per_class: int) -> np.ndarray:
    """Mask of cleanlab's label issues over the full probability matrix (absent classes allowed)."""
    from cleanlab.filter import find_label_issues

    with warnings.catch_warnings():
        # "May not flag all label issues in class k, too few examples": handled by the caller
        warnings.simplefilter("ignore")
        ranked = find_label_issues(given, probs, filter_by=filter_by,
                                   min_examples_per_class=min_examples_per_class,
                                   return_indices_ranked_by="self_confidence", n_jobs=1)
    mask = np.zeros(len(given), dtype=bool)
    mask[ranked] = True
    return mask


def find_suspects(pred: pd.DataFrame, classes: list[str], filter_by: str = "prune_by_noise_rate",
                  min_examples_per_class: int = 1) -> pd.DataFrame:
    """All rows of ``pred`` plus ``given, suggested, self_confidence, label_quality, suspected, rank``;
    how the suspects were found is in ``attrs["method"]``.

    ``cleanlab.filter.find_label_issues`` runs on the full probability matrix. cleanlab 2.9 accepts classes absent
    from the given labels but sets their confident threshold to 2, so it never flags an image whose true class is
    absent from the set, and it cannot run on one class; it also never prunes a class with too few images (one, or
    at most ``min_examples_per_class``). Those rows are also judged by the argmax rule: suspected when the most
    probable class differs from the given one with probability >= 0.5 (a one-class set uses only this rule).
    Suspects come first, lowest self-confidence first (cleanlab's ranking), then the rest by label quality.
    """
    from cleanlab.rank import get_label_quality_scores

    given, probs = _probabilities(pred, classes)
    top = probs.argmax(axis=1)
    present = np.unique(given)
    counts = np.bincount(given, minlength=len(classes))
    blind = ~np.isin(top, present)  # the argmax class has no image labelled with it
    if filter_by in PRUNING:
        blind |= counts[given] <= max(1, min_examples_per_class)
    notes = []
    if len(present) >= 2:
        import cleanlab

        mask = _cleanlab(given, probs, filter_by, min_examples_per_class)
        notes.append(f"cleanlab {cleanlab.__version__} find_label_issues, filter_by={filter_by}")
        if blind.any():
            notes.append(f"{ARGMAX_RULE} (argmax probability >= 0.5) for {int(blind.sum())} image(s) that "
                         "confident learning cannot judge (suggested class absent from the set, or too few "
                         "images of the given class)")
    else:
        mask = np.zeros(len(given), dtype=bool)
        blind[:] = True
        notes.append(f"{ARGMAX_RULE}: argmax differs from the given label with probability >= 0.5 (one class "
                     "in the set, so confident learning cannot run)")
    mask |= blind & _argmax_rule(given, probs)

    out = pred.reset_index(drop=True).copy()
    out["given"] = out["label"].astype(str)
    out["suggested"] = [classes[i] for i in top]
    out["self_confidence"] = probs[np.arange(len(out)), given]
    out["label_quality"] = get_label_quality_scores(given, probs, method="self_confidence")
    out["suspected"] = mask
    suspects = out[mask].sort_values(["self_confidence", "path"], kind="stable")
    rest = out[~mask].sort_values(["label_quality", "path"], kind="stable")
    table = pd.concat([suspects, rest]).reset_index(drop=True)
    table["rank"] = pd.array([*range(1, len(suspects) + 1), *[pd.NA] * len(rest)], dtype="Int64")
    table.attrs["method"] = "; ".join(notes)
    return table


def audit_summary(table: pd.DataFrame, gate: tuple[bool, str] | None = None) -> dict:
    """``n, n_suspected, share, method`` and the suspects per given label of a ``find_suspects`` table; with
    ``gate`` (``audit_informative``) also ``informative, reason``, and no counts (nulls) where not informative."""
    suspects = table[table["suspected"].astype(bool)]
    out = {"n": int(len(table)), "n_suspected": int(len(suspects)),
           "share": float(len(suspects) / len(table)) if len(table) else 0.0,
           "method": table.attrs.get("method", ""),
           "per_class": {str(k): int(v) for k, v in suspects["given"].value_counts().sort_index().items()}}
    if gate is not None:
        out.update({"informative": bool(gate[0]), "reason": gate[1], "rule": INFORMATIVE_RULE})
        if not gate[0]:
            out.update({"n_suspected": None, "share": None, "per_class": {}})
    return out
