"""The report's "Claims" section (verdicts on the paper's claims, the deviations from its recipe) and the reviewer
checklist appendix, from results/summary/claims.json, deviations.csv and checklist.csv (docs/results.md)."""

from __future__ import annotations

from pathlib import Path

from leukoreport.base.errors import LeukoError
from leukoreport.base.validation import require_keys
from leukoreport.report.number_format import DASH, estimate, is_missing, pct1
from leukoreport.report.read_results import read_report_csv, read_report_json, require_key
from leukoreport.report.verdict_style import verdict_style
from leukoreport.stats.claims import VERDICTS
from leukoreport.stats.deviations import STATUSES

__all__ = ["CHECKLIST_COLUMNS", "CLAIM_KEYS", "DEVIATION_COLUMNS", "checklist_section", "claims_section",
           "rerun_text", "summary_claims"]

CLAIM_KEYS = ("id", "kind", "text", "where", "claimed", "rerun", "rerun_value", "low", "high", "seed_min",
              "seed_max", "n_seeds", "verdict", "direction", "reason", "needs", "evidence")
DEVIATION_COLUMNS = ("item", "declared", "rerun", "status", "how")
CHECKLIST_COLUMNS = ("item", "topic", "answered_by", "where")


def _plain(x: float) -> str:
    """A count or a small number as written: 2.0 -> '2', 27.5 -> '27.5', 0.01234 -> '0.012'."""
    return f"{float(x):.3f}".rstrip("0").rstrip(".")


def rerun_text(claim: dict) -> tuple[str, str]:
    """The rerun cell of one claim: the judge's own text (mean over seeds [interval], seeds range, counts) when it
    wrote one; else mean [interval] and the per-seed range ('one run' with one) from the numbers, as percentages
    when the claimed text is one."""
    value, low, high = claim["rerun_value"], claim["low"], claim["high"]
    if claim["rerun"] or is_missing(value):
        return (str(claim["rerun"]) if claim["rerun"] else DASH), ""
    as_pct = "%" in str(claim["claimed"])
    fmt = pct1 if as_pct else _plain
    if is_missing(low) or is_missing(high):
        main = fmt(value)
    else:
        main = str(estimate(value, low, high)) if as_pct else f"{fmt(value)} [{fmt(low)}–{fmt(high)}]"
    n = int(claim["n_seeds"] or 0)
    if n < 2 or is_missing(claim["seed_min"]) or is_missing(claim["seed_max"]):
        return main, "one run" if n == 1 else ""
    lo, hi = fmt(claim["seed_min"]), fmt(claim["seed_max"])
    return main, f"seeds {lo.rstrip('%') if as_pct else lo}–{hi} ({n} runs)"


def _claim_row(claim: dict, path: Path) -> dict:
    """One claim's table row and its reason line."""
    require_keys(f"{path.as_posix()}: claim '{claim.get('id', '?')}'", claim, CLAIM_KEYS)
    verdict = claim["verdict"]
    if verdict not in VERDICTS:
        raise LeukoError(f"{path.as_posix()}: claim '{claim['id']}': verdict '{verdict}' is not one of "
                         f"{', '.join(VERDICTS)}")
    main, seeds = rerun_text(claim)
    label = verdict if not claim["direction"] else f"{verdict} ({claim['direction']})"
    return {"id": claim["id"], "kind": claim["kind"], "text": claim["text"], "where": claim["where"],
            "title": claim.get("title") or claim["text"],  # older claims.json files have no title
            "claimed": claim["claimed"] or DASH, "rerun": main, "seeds": seeds, "verdict": verdict,
            "label": label, "css": verdict_style(verdict).css, "reason": claim["reason"] or "",
            "needs": claim["needs"] if verdict == "inconclusive" and claim["needs"] else "",
            "evidence": claim["evidence"] or DASH}


def _deviations(path: Path) -> list[dict]:
    """The rows of deviations.csv: item, the paper's value, the rerun's, same / different / not declared, how."""
    df = read_report_csv(path, DEVIATION_COLUMNS, dtype=str, keep_default_na=False)
    bad = sorted(set(df["status"]) - set(STATUSES))
    if bad:
        raise LeukoError(f"{path.as_posix()}: column 'status': {bad} is not one of {', '.join(STATUSES)}")
    return [{"item": r["item"], "declared": r["declared"] or DASH, "rerun": r["rerun"] or DASH,
             "status": r["status"], "how": r["how"] if r["status"] == "different" else "",
             "css": r["status"].replace(" ", "-")} for _, r in df.iterrows()]


def claims_section(summary_dir: str | Path) -> dict | None:
    """The Claims section from `summary_dir`/claims.json and deviations.csv; None without claims.json (config
    `claims: null`)."""
    summary_dir = Path(summary_dir)
    path = summary_dir / "claims.json"
    if not path.is_file():
        return None
    data = read_report_json(path)
    paper = require_key(data, "paper", path)
    require_keys(f"{path.as_posix()}: paper", paper, ("title", "citation"))
    rows = [_claim_row(c, path) for c in require_key(data, "claims", path)]
    counts = [{"verdict": v, "n": sum(r["verdict"] == v for r in rows), "css": verdict_style(v).css}
              for v in VERDICTS]
    deviations = _deviations(summary_dir / "deviations.csv")
    return {"paper": {"title": paper["title"], "citation": paper["citation"]},
            "claims_file": str(require_key(data, "claims_file", path)),
            "level": f"{100 * float(require_key(data, 'confidence', path)):g}%",
            "rows": rows, "counts": [c for c in counts if c["n"]], "n_claims": len(rows),
            "deviations": deviations,
            "n_different": sum(d["status"] == "different" for d in deviations),
            "n_undeclared": sum(d["status"] == "not declared" for d in deviations)}


def summary_claims(section: dict | None) -> dict | None:
    """The summary's compact claims table (claim, claimed, rerun, verdict) from the Claims section."""
    if section is None:
        return None
    keep = ("id", "title", "text", "where", "claimed", "rerun", "seeds", "label", "css")
    return {"paper": section["paper"], "level": section["level"], "counts": section["counts"],
            "n_claims": section["n_claims"], "n_different": section["n_different"],
            "rows": [{k: r[k] for k in keep} for r in section["rows"]]}


def checklist_section(summary_dir: str | Path) -> dict | None:
    """The reviewer checklist appendix (CLAIM 2024) from `summary_dir`/checklist.csv; None when it is missing."""
    path = Path(summary_dir) / "checklist.csv"
    if not path.is_file():
        return None
    df = read_report_csv(path, CHECKLIST_COLUMNS, dtype=str, keep_default_na=False)
    rows = [{k: r[k] for k in CHECKLIST_COLUMNS} for _, r in df.iterrows()]
    return {"rows": rows, "n": len(rows), "n_run": sum(r["answered_by"] == "this run" for r in rows),
            "file": "results/summary/checklist.csv"}
