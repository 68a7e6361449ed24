"""Interventions at evaluation in the reports: a table of external set x intervention and the "why" sentences, from
results/summary/interventions.json (leukoreport.stats.interventions)."""

from __future__ import annotations

from pathlib import Path

from leukoreport.base.atomic_io import read_json
from leukoreport.base.validation import require_keys
from leukoreport.report.number_format import DASH, gap_estimate, is_missing, num, pct1
from leukoreport.report.sections.validity import gain_text
from leukoreport.stats.interventions import LOWERS, NOT_INFORMATIVE, RAISES, REFERENCE, change_text
from leukoreport.stats.paired import p_value

__all__ = ["KEYS", "ROW_KEYS", "SUMMARY_SETS", "VERDICT_CSS", "intervention_row", "interventions_section",
           "summary_sentences"]

KEYS = ("datasets", "rows", "sentences", "verdict_rule", "alpha", "confidence_level", "n_comparisons",
        "interval_method")
ROW_KEYS = ("dataset", "intervention", "label", "applicable", "note", "n_images", "n_runs", "accuracy",
            "balanced_accuracy", "gain", "gain_low", "gain_high", "accuracy_change", "accuracy_change_low",
            "accuracy_change_high", "balanced_accuracy_change", "balanced_accuracy_change_low",
            "balanced_accuracy_change_high", "p", "p_holm", "verdict", "reason", "domain_auc",
            "median_ood_percentile", "seconds_per_image", "added_seconds_per_image")
VERDICT_CSS = {RAISES: "better", LOWERS: "worse"}  # style.css classes of report/verdict_style.py; others: "none"


def _ms(seconds: float | None, signed: bool = False) -> str:
    """Seconds per image as milliseconds: 0.0123 -> '12.3 ms' ('+12.3 ms' when signed)."""
    if is_missing(seconds):
        return DASH
    return f"{1000 * float(seconds):+.1f} ms" if signed else f"{1000 * float(seconds):.1f} ms"


def _change(row: dict, metric: str) -> str:
    """'+21.0 pp [+15.0 to +27.0]' or a dash (plain evaluation, not applicable)."""
    value = row[f"{metric}_change"]
    return DASH if is_missing(value) else str(gap_estimate(value, row[f"{metric}_change_low"],
                                                           row[f"{metric}_change_high"]))


def intervention_row(row: dict) -> dict:
    """One row of interventions.json formatted for the table."""
    plain = row["intervention"] == REFERENCE
    applied = bool(row["applicable"])
    verdict = "reference" if plain else row["verdict"]  # a not-informative row's reason is in the set's sentence
    return {"dataset": row["dataset"], "intervention": row["label"], "plain": plain, "n": row["n_images"],
            "accuracy": pct1(row["accuracy"]) if applied else DASH,
            "balanced_accuracy": pct1(row["balanced_accuracy"]) if applied else DASH,
            "gain": gain_text(row["gain"], row["gain_low"], row["gain_high"], row["n_images"]) if applied else DASH,
            "change": _change(row, "accuracy"), "balanced_change": _change(row, "balanced_accuracy"),
            "p_holm": DASH if is_missing(row["p_holm"]) else p_value(row["p_holm"]),
            "verdict": verdict, "css": VERDICT_CSS.get(row["verdict"], "none"),
            "auc": num(row["domain_auc"], 3),
            "ood": DASH if is_missing(row["median_ood_percentile"]) else f"{row['median_ood_percentile']:.0f}",
            "cost": _ms(row["seconds_per_image"]),
            "added": DASH if plain else _ms(row["added_seconds_per_image"], signed=True)}


SUMMARY_SETS = 3  # sets with a detected change named one by one in the summary; the rest in one line


def _changes(rows: list[dict]) -> str:
    """'colour normalisation (Reinhard) raises accuracy by 21.0 pp [15.0 to 27.0]; AdaBN lowers it by ...'."""
    return "; ".join(f"{r['label']} {r['verdict']} accuracy by {change_text(r)}"
                     for r in sorted(rows, key=lambda r: -abs(r["accuracy_change"])))


def summary_sentences(data: dict, limit: int = SUMMARY_SETS) -> list[str]:
    """The summary's lines, short enough for two pages: per set with a detected change (largest first, at most
    ``limit``) the changes alone; then one line each for the sets with no change detected and with nothing
    informative (the full sentences are in the report)."""
    changed, same, silent = [], [], []
    for name in data["datasets"]:
        others = [r for r in data["rows"] if r["dataset"] == name and r["intervention"] != REFERENCE]
        moved = [r for r in others if r["verdict"] in (RAISES, LOWERS)]
        if moved:
            changed.append((max(abs(r["accuracy_change"]) for r in moved), name, moved))
        elif others and all(r["verdict"] == NOT_INFORMATIVE for r in others):
            silent.append(name)
        elif others:
            same.append(name)
    changed.sort(key=lambda c: -c[0])
    lines = [f"On '{name}': {_changes(moved)}." for _, name, moved in changed[:limit]]
    rest = [name for _, name, _ in changed[limit:]]
    if rest:
        lines.append(f"Interventions change the accuracy on {len(rest)} more set(s): "
                     f"{', '.join(repr(n) for n in rest)} (report).")
    if same:
        lines.append(f"No intervention changed the accuracy detectably on {', '.join(repr(n) for n in same)}.")
    if silent:
        lines.append(f"Interventions at evaluation: not informative on {', '.join(repr(n) for n in silent)} "
                     f"(reasons in the report).")
    return lines


def interventions_section(results_dir: str | Path) -> dict | None:
    """Context of the interventions table and sentences; None when results/summary/interventions.json is absent
    (``validity.interventions`` off)."""
    path = Path(results_dir) / "summary" / "interventions.json"
    if not path.is_file():
        return None
    data = read_json(path)
    where = path.as_posix()
    require_keys(where, data, KEYS)
    for i, row in enumerate(data["rows"]):
        require_keys(f"{where}: rows[{i}]", row, ROW_KEYS)
    sets = [{"name": name, "sentence": data["sentences"].get(name, ""),
             "rows": [intervention_row(r) for r in data["rows"] if r["dataset"] == name]}
            for name in data["datasets"]]
    return {"sets": sets, "sentences": [s["sentence"] for s in sets if s["sentence"]],
            "summary_sentences": summary_sentences(data),
            "rule": data["verdict_rule"], "alpha": f"{data['alpha']:g}", "n_comparisons": data["n_comparisons"],
            "level": f"{100 * float(data['confidence_level']):g}%", "method": data["interval_method"],
            "source": "results/summary/interventions.csv"}
