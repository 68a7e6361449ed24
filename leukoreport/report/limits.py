"""How much of each per-image list the report shows (config key ``report_limits``)."""

from __future__ import annotations

import numbers

from leukoreport.base.errors import LeukoError
from leukoreport.config.settings import ReportLimits

__all__ = ["REPORT_LIMITS", "positive_limit", "report_limits"]

# Images (and table rows) the report shows per seed and dataset: the schema's defaults of `report_limits`.
# Every item stays in the CSV beside the figure (predictions.csv, leakage.csv, agreement.csv, label_issues.csv).
REPORT_LIMITS = ReportLimits.defaults().as_dict()


def report_limits(config: dict | None = None) -> dict[str, int]:
    """REPORT_LIMITS updated with ``config["report_limits"]``; LeukoError naming a bad or unknown key."""
    given = (config or {}).get("report_limits") or {}
    if not isinstance(given, dict):
        raise LeukoError(f"report_limits: must be a mapping, got {given!r}")
    limits = dict(REPORT_LIMITS)
    for key, value in given.items():
        if key not in REPORT_LIMITS:
            raise LeukoError(f"report_limits: unknown key '{key}' (known: {', '.join(REPORT_LIMITS)})")
        limits[key] = positive_limit(value, f"report_limits.{key}")
    return limits


def positive_limit(value: object, name: str) -> int:
    """`value` as a positive int, or LeukoError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise LeukoError(f"{name}: must be a positive integer, got {value!r}")
    return int(value)
