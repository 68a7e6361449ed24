"""The report's "Leakage audit" section, from splits/<seed>/audit/ (leakage.json, leakage.csv, the pages)."""

from __future__ import annotations

from pathlib import Path

from leukoreport.base.errors import LeukoError
from leukoreport.report.gallery_rows import GALLERY_META, PAIR_ORDER, left_out_text, pair_rows
from leukoreport.report.limits import report_limits
from leukoreport.report.model_card import leakage_sentences
from leukoreport.report.number_format import yes_no
from leukoreport.report.read_results import (
    gallery_meta,
    gallery_pages,
    read_report_csv,
    read_report_json,
    require_key,
    shown_path,
)
from leukoreport.report.render import png_data_uri

__all__ = ["leakage_section"]


def leakage_section(results_dir: Path, split_seed: int, with_pages: bool = True, limits: dict | None = None) -> dict:
    """The leakage audit of one split seed: counts per scope, the first ``limits["pair_rows"]`` pairs most
    informative first (gallery_rows.pair_rows) as table rows, and the thumbnail pages."""
    audit = results_dir / "splits" / str(split_seed) / "audit"
    spath = audit / "leakage.json"
    summary = read_report_json(spath)
    for k in ("n_images", "n_pairs", "n_exact", "n_near", "max_distance", "hash", "hash_bits", "by_scope",
              "label_conflicts"):
        require_key(summary, k, spath)
    ctx = {"split_seed": split_seed, "n_images": summary["n_images"], "n_pairs": summary["n_pairs"],
           "n_exact": summary["n_exact"],
           "n_near": summary["n_near"], "max_distance": summary["max_distance"], "hash": summary["hash"],
           "hash_bits": summary["hash_bits"], "label_conflicts": summary["label_conflicts"],
           "scopes": [{"scope": k, "exact": v.get("exact", 0), "near": v.get("near", 0)}
                      for k, v in summary["by_scope"].items()],
           "groups": summary.get("groups", {})}
    ctx["group_rows"] = [{"group": g, **c} for g, c in ctx["groups"].items()]
    ctx["sentences"] = leakage_sentences([ctx])[1:] if ctx["n_pairs"] else []
    if with_pages:
        ppath = audit / "leakage.csv"
        pairs = read_report_csv(ppath, ["path_a", "group_a", "label_a", "path_b", "group_b", "label_b", "distance",
                                        "kind", "scope", "same_label"], dtype={"path_a": str, "path_b": str})
        if len(pairs) != summary["n_pairs"]:
            raise LeukoError(f"{spath.as_posix()}: n_pairs = {summary['n_pairs']} disagrees with {ppath.name} "
                             f"({len(pairs)} rows)")
        limits = limits or report_limits()
        listed_in = shown_path(ppath, results_dir)
        shown = pair_rows(pairs, limits["pair_rows"])
        ctx["pairs"] = [{"number": int(r["number"]), "kind": r["kind"], "distance": int(r["distance"]),
                         "scope": r["scope"], "a": f"{r['group_a']} · {r['label_a']}", "file_a": r["path_a"],
                         "b": f"{r['group_b']} · {r['label_b']}", "file_b": r["path_b"],
                         "same_label": yes_no(bool(r["same_label"]))}
                        for _, r in shown.iterrows()]
        ctx["pairs_note"] = left_out_text(len(shown), len(pairs), "duplicate pairs", listed_in)
        ctx["order"] = PAIR_ORDER
        ctx["pages"] = [png_data_uri(p) for p in gallery_pages(audit / "pairs")]
        ctx["gallery"] = gallery_meta(audit / "pairs" / GALLERY_META, listed_in)
    return ctx
