"""The report's "External sets" section: per set its classes and per run the accuracy and the gap to the test split."""

from __future__ import annotations

import pandas as pd

from leukoreport.report.number_format import estimate, gap_estimate, pct1
from leukoreport.report.sections.validity import points_span, run_span, summary_external
from leukoreport.stats.run_tables import run_label

__all__ = ["external_overview", "external_section"]


def external_section(gaps: pd.DataFrame, data: dict, validity: pd.DataFrame | None = None) -> list[dict]:
    """Per external set: its size and classes, and per seed accuracy, test accuracy and the gap with intervals,
    with the majority baseline and the domain AUC from validity.csv when given."""
    extra = summary_external(validity) if validity is not None else {}
    out = []
    for e in data["external"]:
        rows = gaps[gaps["dataset"] == e["name"]]
        present = [r["label"] for r in e["rows"] if r["count"] > 0]
        out.append({
            "name": e["name"], "total": e["total"], "classes_present": present,
            "classes_text": f"all {len(present)}" if len(present) == len(e["rows"]) else ", ".join(present),
            "rows": [{"label": run_label(int(r["split_seed"]), int(r["seed"]), gaps["split_seed"].nunique()),
                      "accuracy": estimate(r["accuracy"], r["accuracy_low"], r["accuracy_high"]),
                      "n_correct": int(round(r["accuracy"] * r["n"])), "n": int(r["n"]),
                      "test_accuracy": estimate(r["test_accuracy"], r["test_accuracy_low"], r["test_accuracy_high"]),
                      "gap": gap_estimate(r["gap"], r["gap_low"], r["gap_high"]),
                      "gap_excludes_zero": bool(r["gap_low"] > 0 or r["gap_high"] < 0),
                      "validity": extra.get((int(r["split_seed"]), int(r["seed"]), str(e["name"])))}
                     for _, r in rows.iterrows()],
        })
    return out


def external_overview(gaps: pd.DataFrame, sets: list[dict]) -> list[dict]:
    """The PDF's table over external sets (`sets`: external_section's entries), a row per set from external.csv:
    ranges over runs of its accuracy, the test accuracy and the gap, and the runs whose gap interval excludes 0."""
    out = []
    for e in sets:
        rows = gaps[gaps["dataset"] == e["name"]]
        out.append({"name": e["name"], "total": e["total"], "classes_text": e["classes_text"], "n_runs": len(rows),
                    "accuracy": run_span(rows["accuracy"], pct1),
                    "test_accuracy": run_span(rows["test_accuracy"], pct1),
                    "gap": points_span(rows["gap"]), "below": int((rows["gap_high"] < 0).sum()),
                    "above": int((rows["gap_low"] > 0).sum())})
    return out
