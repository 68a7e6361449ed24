"""Argument checks shared by every module: each raises LeukoError naming where, the argument and what is wrong."""

from __future__ import annotations

from collections.abc import Iterable
from numbers import Integral, Real
from typing import Any

import pandas as pd

from leukoreport.base.errors import LeukoError

__all__ = ["check_confidence", "check_counts", "check_int", "check_positive_int", "require_columns",
           "require_keys"]


def check_confidence(where: str, confidence: Any) -> float:
    """`confidence` as a float strictly between 0 and 1."""
    if isinstance(confidence, bool) or not isinstance(confidence, Real) or not 0 < confidence < 1:
        raise LeukoError(f"{where}: confidence = {confidence!r} is not strictly between 0 and 1")
    return float(confidence)


def check_positive_int(where: str, name: str, value: Any) -> int:
    """`value` as a positive int (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise LeukoError(f"{where}: {name} = {value!r} is not a positive integer")
    return int(value)


def check_int(where: str, name: str, value: Any, minimum: int) -> int:
    """`value` as an int of at least `minimum` (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise LeukoError(f"{where}: {name} = {value!r} is not an integer >= {minimum}")
    return int(value)


def check_counts(where: str, k: Any, n: Any, k_name: str = "k", n_name: str = "n") -> None:
    """Raise unless k and n are integers with 0 <= k <= n and n >= 1."""
    for name, value in ((k_name, k), (n_name, n)):
        if isinstance(value, bool) or not isinstance(value, Integral):
            raise LeukoError(f"{where}: {name} = {value!r} is not an integer")
    if n < 1:
        raise LeukoError(f"{where}: {n_name} = {n} must be at least 1")
    if k < 0:
        raise LeukoError(f"{where}: {k_name} = {k} is negative")
    if k > n:
        raise LeukoError(f"{where}: {k_name} = {k} exceeds {n_name} = {n}")


def require_columns(where: str, table: Any, columns: Iterable[str], allow_empty: bool = True) -> None:
    """Raise unless `table` is a DataFrame holding every column in `columns` (and rows, unless allowed empty)."""
    if not isinstance(table, pd.DataFrame):
        raise LeukoError(f"{where}: expected a DataFrame, got {type(table).__name__}")
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise LeukoError(f"{where}: missing column(s) {missing}")
    if not allow_empty and table.empty:
        raise LeukoError(f"{where}: no rows")


def require_keys(where: str, mapping: Any, keys: Iterable[str]) -> None:
    """Raise unless `mapping` is a dict holding every key in `keys`."""
    if not isinstance(mapping, dict):
        raise LeukoError(f"{where}: expected a dict, got {type(mapping).__name__}")
    missing = [k for k in keys if k not in mapping]
    if missing:
        raise LeukoError(f"{where}: missing key(s) {missing}")
