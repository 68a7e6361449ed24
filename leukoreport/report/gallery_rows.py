"""Which rows a capped gallery or table shows, in which order, and what it says about the rest (no drawing)."""

from __future__ import annotations

import numbers
from pathlib import Path

import pandas as pd

from leukoreport.base.atomic_io import write_json
from leukoreport.base.errors import LeukoError
from leukoreport.base.validation import require_columns
from leukoreport.report.limits import positive_limit

__all__ = ["AGREEMENT_NOUNS", "GALLERY_META", "PAIR_ORDER", "PAIR_SCOPE_ORDER", "agreement_rows",
           "agreement_selected", "left_out_text", "pair_rows", "truthy", "write_gallery_meta"]

GALLERY_META = "gallery.json"
# most informative first: pairs that leak between training and evaluation data before duplicates within a set
PAIR_SCOPE_ORDER = ("across splits", "training vs external", "within split", "within external",
                    "across external sets")
PAIR_ORDER = ("exact before near, different labels first, across splits and training vs external before "
              "within a set, then by distance")
# per agreement kind: the noun of its images and the order of its gallery
AGREEMENT_NOUNS = {"always_wrong": ("images wrong in every run", "by path"),
                   "unstable": ("images whose prediction changes", "fewest runs right first"),
                   "most_wrong": ("images wrong in at least one run", "most runs wrong first, then by path")}


def left_out_text(shown: int, total: int, noun: str, listed_in: str) -> str:
    """The sentence under a capped gallery or table: 'showing 30 of 750 misclassified images (720 not
    shown); all are listed in predictions.csv'; '' when nothing is left out."""
    if shown >= total:
        return ""
    return f"showing {shown} of {total} {noun} ({total - shown} not shown); all are listed in {listed_in}"


def write_gallery_meta(path: str | Path, total: int, paths: list[str], noun: str, listed_in: str,
                       order: str, titles: list[str], **extra) -> dict:
    """Write what a gallery shows as JSON beside it (``total``, ``shown``, ``not_shown``, the
    left-out ``note``, ``order``, the page ``titles`` and the drawn ``paths`` in order); returns it."""
    meta = {"total": int(total), "shown": len(paths), "not_shown": int(total) - len(paths), "noun": noun,
            "listed_in": listed_in, "order": order,
            "note": left_out_text(len(paths), int(total), noun, listed_in), "titles": titles,
            "paths": [str(p) for p in paths], **extra}
    write_json(meta, path)
    return meta


def truthy(value: object) -> bool:
    """A same_label flag as bool; the strings 'False', 'false' and '0' are false."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def pair_rows(pairs: pd.DataFrame, limit: int | None = None) -> pd.DataFrame:
    """The pairs of a leakage table most informative first (PAIR_ORDER; ties keep the table's order),
    with ``number``, the pair's row in the table (1 = first), at most `limit` of them (all when None)."""
    require_columns("pairs", pairs, ("kind", "scope", "distance", "same_label"))
    if limit is not None:
        limit = positive_limit(limit, "pairs: limit")
    distance = pd.to_numeric(pairs["distance"], errors="coerce")
    if distance.isna().any():
        raise LeukoError("pairs: column 'distance' has missing or non-numeric values")
    scopes = {s: i for i, s in enumerate(PAIR_SCOPE_ORDER)}
    order = pairs.reset_index(drop=True).assign(
        number=range(1, len(pairs) + 1),
        _kind=[0 if str(k) == "exact" else 1 for k in pairs["kind"]],
        _same=[int(truthy(v)) for v in pairs["same_label"]],
        _scope=[scopes.get(str(v), len(scopes)) for v in pairs["scope"]],
        _distance=distance.to_numpy())
    order = order.sort_values(["_kind", "_same", "_scope", "_distance", "number"], kind="stable")
    order = order.drop(columns=["_kind", "_same", "_scope", "_distance"])
    return order if limit is None else order.head(limit)


def agreement_selected(agreement: pd.DataFrame, kind: str) -> pd.DataFrame:
    """All rows of `agreement` flagged `kind`, in gallery order (always_wrong by path; unstable
    by n_correct, then path; most_wrong, every image some run got wrong, by the share of runs
    right, then path)."""
    if kind not in AGREEMENT_NOUNS:
        raise LeukoError(f"agreement gallery: kind must be one of {list(AGREEMENT_NOUNS)}, "
                         f"got {kind!r}")
    flag = () if kind == "most_wrong" else (kind,)
    require_columns("agreement", agreement, ("path", "label", "n_runs", "n_correct", "majority", *flag))
    for column in ("n_runs", "n_correct"):
        if pd.to_numeric(agreement[column], errors="coerce").isna().any():
            raise LeukoError(f"agreement: column '{column}' has missing or non-numeric values")
    if kind == "most_wrong":
        rows = agreement[pd.to_numeric(agreement["n_correct"]) < pd.to_numeric(agreement["n_runs"])]
    else:
        rows = agreement[[truthy(v) for v in agreement[kind]]]
    keys = ["_path"] if kind == "always_wrong" else ["_correct", "_path"]
    # most_wrong: most runs wrong first, i.e. the lowest share of runs right (n_correct / n_runs)
    right = pd.to_numeric(rows["n_correct"]) / (pd.to_numeric(rows["n_runs"]) if kind == "most_wrong" else 1)
    order = rows.assign(_path=rows["path"].astype(str), _correct=right)
    return order.sort_values(keys, kind="stable").drop(columns=["_path", "_correct"])


def agreement_rows(agreement: pd.DataFrame, kind: str, limit: int = 30) -> pd.DataFrame:
    """The first `limit` rows flagged `kind` ('always_wrong' or 'unstable') in gallery order:
    always_wrong by path; unstable by n_correct (fewest right first), then path."""
    if isinstance(limit, bool) or not isinstance(limit, numbers.Integral) or limit < 1:
        raise LeukoError(f"agreement gallery: limit must be a positive integer, got {limit!r}")
    return agreement_selected(agreement, kind).head(limit)
