"""Which predictions the error views show: the highest losses, right or wrong."""

from __future__ import annotations

import numbers

import pandas as pd

from leukoreport.base.errors import LeukoError
from leukoreport.base.validation import require_columns

__all__ = ["top_loss_rows"]


def top_loss_rows(pred: pd.DataFrame, k: int) -> pd.DataFrame:
    """The `k` rows of `pred` with the highest ``loss`` (all rows when fewer), highest first,
    ties by path."""
    require_columns("predictions", pred, ("path", "loss"))
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise LeukoError(f"top losses: k must be a positive integer, got {k!r}")
    loss = pd.to_numeric(pred["loss"], errors="coerce")
    if loss.isna().any():
        raise LeukoError("predictions: column 'loss' has missing or non-numeric values")
    order = (pred.assign(_loss=loss, _path=pred["path"].astype(str))
             .sort_values(["_loss", "_path"], ascending=[False, True], kind="stable"))
    return order.drop(columns=["_loss", "_path"]).head(k)
