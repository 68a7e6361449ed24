"""Suspected label errors from held-out class probabilities (cleanlab's confident learning); nothing is relabelled."""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from leukoreport.errors import LeukoError  # noqa: E402
from leukoreport.figures import STYLE, _gallery_page, _save  # noqa: E402
from leukoreport.metrics import prob_columns  # noqa: E402

FALLBACK = "predicted_neq_given"  # when cleanlab cannot run: fewer than 2 classes among the given labels


def _fallback(given: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Rows whose most probable class is not the given one with probability at least 0.5."""
    top = probs.argmax(axis=1)
    return np.flatnonzero((top != given) & (probs.max(axis=1) >= 0.5))


def find_suspects(pred: pd.DataFrame, classes: list[str], filter_by: str = "prune_by_noise_rate",
                  min_examples_per_class: int = 1) -> pd.DataFrame:
    """Every row of ``pred`` with ``given, suggested, self_confidence, label_quality, suspected, rank``.

    ``cleanlab.filter.find_label_issues`` over all training classes (classes absent from the set are allowed);
    with fewer than two classes among the given labels cleanlab cannot estimate noise rates, and rows whose
    argmax differs from the given label with probability >= 0.5 are flagged instead (``attrs["method"]``).
    Suspects come first in cleanlab's order (lowest self-confidence first), then the rest by label quality.
    """
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

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
    given = np.array([index[str(x)] for x in pred["label"]])
    probs = pred[columns].to_numpy(dtype=float)
    probs = probs / probs.sum(axis=1, keepdims=True)
    if len(np.unique(given)) >= 2:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "too few examples in class ..." for small sets
            ranked = find_label_issues(given, probs, filter_by=filter_by,
                                       min_examples_per_class=min_examples_per_class,
                                       return_indices_ranked_by="self_confidence")
        method = f"cleanlab {_version()} find_label_issues, filter_by={filter_by}"
    else:
        ranked = _fallback(given, probs)
        ranked = ranked[np.argsort(probs[ranked, given[ranked]], kind="stable")]
        method = (f"{FALLBACK} (one class in the set, so confident learning cannot estimate noise rates): "
                  "argmax differs from the given label with probability ≥ 0.5")
    out = pred[["path", "label"]].reset_index(drop=True).copy()
    out["given"] = out["label"]
    out["suggested"] = [classes[i] for i in probs.argmax(axis=1)]
    out["self_confidence"] = probs[np.arange(len(out)), given]
    out["label_quality"] = get_label_quality_scores(given, probs, method="self_confidence")
    out["suspected"] = False
    out.loc[ranked, "suspected"] = True
    out["rank"] = pd.Series(pd.NA, index=out.index, dtype="Int64")
    out.loc[ranked, "rank"] = np.arange(1, len(ranked) + 1)
    rest = out[~out["suspected"]].sort_values(["label_quality", "path"], kind="stable")
    table = pd.concat([out.loc[ranked], rest]).drop(columns="label").reset_index(drop=True)
    table.attrs["method"] = method
    return table


def _version() -> str:
    import cleanlab

    return cleanlab.__version__


def audit_summary(table: pd.DataFrame) -> dict:
    """``n, n_suspected, share, method`` and the suspects per given label of a ``find_suspects`` table."""
    suspects = table[table["suspected"]]
    return {"n": int(len(table)), "n_suspected": int(len(suspects)),
            "share": float(len(suspects) / len(table)) if len(table) else 0.0,
            "method": table.attrs.get("method", ""),
            "per_class": {str(k): int(v) for k, v in suspects["given"].value_counts().sort_index().items()}}


def _cell(row: pd.Series) -> tuple[str, str]:
    return (f"given: {row['given']}\nsuggested: {row['suggested']}\nself-conf. {row['self_confidence']:.0%}",
            "#b00020")


def plot_suspects(table: pd.DataFrame, out_dir: str | Path, root: str | Path = ".", title: str = "",
                  limit: int = 30, columns: int = 6) -> int:
    """``out_dir/page-01.png``: the first ``limit`` suspects in rank order (or a line saying there are none);
    returns the number of suspects. File and class names are drawn literally."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("page-*.png"):
        old.unlink()
    suspects = table[table["suspected"]]
    n = int(len(suspects))
    if n == 0:
        with plt.rc_context(STYLE):
            fig = plt.figure(figsize=(5.0, 0.9))
            fig.text(0.5, 0.5, f"No suspected label errors ({len(table)} images)", ha="center", va="center",
                     fontsize=13)
            _save(fig, out_dir / "page-01.png")
        return 0
    shown = suspects.head(limit)
    head = f"first {limit} of {n} suspected label errors; the rest are in label_issues.csv" if n > limit \
        else f"{n} suspected label error{'s' if n > 1 else ''} in {len(table)} images"
    _gallery_page(shown, Path(root), columns, out_dir / "page-01.png", f"{title}: {head}" if title else head,
                  _cell, cell_size=(1.7, 2.5), title_size=9)
    return n
