"""The "External validity" section of the full report and its lines in the summary, from results/ files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from leukoreport.base.atomic_io import read_json
from leukoreport.base.errors import LeukoError
from leukoreport.base.validation import require_columns
from leukoreport.report.gallery_rows import GALLERY_META, left_out_text
from leukoreport.report.limits import REPORT_LIMITS
from leukoreport.report.number_format import DASH, estimate, gap_estimate, is_missing, num, pct1
from leukoreport.report.read_results import shown_path
from leukoreport.stats.run_tables import RunKey, run_folder
from leukoreport.stats.validity import COVERAGES, VALIDITY_COLUMNS

__all__ = ["KS_SMALL", "LABEL_ROWS", "SHIFT_ROWS", "STAT_NAMES", "baseline_cells", "gain_text", "points_span",
           "read_validity", "run_span", "summary_external", "validity_by_set", "validity_overview",
           "validity_section"]

SHIFT_ROWS = 6  # image statistics shown per set (all are in image_shift.csv)
KS_SMALL = 0.001  # the overview counts a set's image statistics whose KS p-value is below this
LABEL_ROWS = REPORT_LIMITS["label_rows"]  # suspected label errors listed per set (all in label_issues.csv)
STAT_NAMES = {"mean_r": "mean red", "mean_g": "mean green", "mean_b": "mean blue", "sd_r": "SD red",
              "sd_g": "SD green", "sd_b": "SD blue", "brightness": "brightness", "contrast": "contrast",
              "saturation": "saturation", "sharpness": "sharpness (Laplacian variance)", "width": "width (px)",
              "height": "height (px)", "aspect": "aspect ratio", "od_hematoxylin": "haematoxylin OD",
              "od_eosin": "eosin OD"}


def _auc(row: pd.Series) -> str:
    """'0.993 [0.981–1.000]' or '—'."""
    return str(estimate(row["domain_auc"], row["domain_auc_low"], row["domain_auc_high"], "num"))


def read_validity(results_dir: Path) -> pd.DataFrame:
    """results/summary/validity.csv, with a one-line error when a column is missing."""
    path = results_dir / "summary" / "validity.csv"
    if not path.is_file():
        raise LeukoError(f"{path.as_posix()}: file not found (written by the validity_summary rule)")
    table = pd.read_csv(path, dtype={"dataset": str, "majority_class": str})
    require_columns(path.as_posix(), table, VALIDITY_COLUMNS)
    return table


def gain_text(gain: float, low: float, high: float, n: int | None = None) -> str:
    """'+61.2 pp [57.0 to 65.0]'; a bootstrap interval of zero width (every image differs the same way, as on a
    one-class set that the model gets all wrong) is printed as not informative rather than as a point."""
    if not is_missing(low) and not is_missing(high) and float(high) - float(low) <= 1e-12:
        size = "" if n is None or is_missing(n) else f", n = {int(n)}"
        return f"{gap_estimate(gain, None, None).value} (interval not informative{size})"
    return str(gap_estimate(gain, low, high))


def baseline_cells(row) -> dict:
    """Majority and training-prior baselines and the gain over majority (a validity.csv row or a metrics.json
    ``baselines`` dict), formatted for a table row."""
    if is_missing(row.get("majority_accuracy")):
        return {"majority": DASH, "majority_class": DASH, "prior": DASH, "gain": DASH, "below": False}
    return {"majority": pct1(row["majority_accuracy"]), "majority_class": str(row["majority_class"]),
            "prior": pct1(row["prior_accuracy"]),
            "gain": gain_text(row["gain"], row["gain_low"], row["gain_high"], row.get("n")),
            "below": bool(row["gain_high"] < 0)}


def _image_shift(results_dir: Path, split: int, name: str, uri) -> dict | None:
    folder = results_dir / "splits" / str(split) / "validity" / name
    path = folder / "image_shift.csv"
    if not path.is_file():
        return None
    table = pd.read_csv(path)
    rows = [{"statistic": STAT_NAMES.get(r["statistic"], r["statistic"]),
             "train": f"{r['train_mean']:.4g} ({r['train_sd']:.3g})", "set": f"{r['set_mean']:.4g} ({r['set_sd']:.3g})",
             "wasserstein_sd": num(r["wasserstein_sd"], 2), "ks": num(r["ks"], 2),
             "separability": num(r.get("separability"), 2), "std_difference": num(r.get("std_difference"), 2),
             "ks_p": "< 0.001" if r["ks_p"] < 0.001 else num(r["ks_p"], 3)}
            for _, r in table.head(SHIFT_ROWS).iterrows()]
    return {"split_seed": split, "rows": rows, "n_statistics": len(table), "figure": uri(folder / "image_shift.png"),
            "n_ks_small": int((table["ks_p"] < KS_SMALL).sum())}


def _label_audit(results_dir: Path, split: int, name: str, uri, limit: int = LABEL_ROWS) -> dict | None:
    """One set's suspected label errors: counts, the first `limit` suspects as table rows, the gallery and the
    sentences saying what either leaves out."""
    folder = results_dir / "splits" / str(split) / "validity" / name
    spath = folder / "label_audit.json"
    if not spath.is_file():
        return None
    summary = read_json(spath)
    base = {"split_seed": split, "n": summary["n"], "method": summary["method"],
            "seeds": ", ".join(str(s) for s in summary.get("seeds", []))}
    if summary.get("informative") is False:  # stats.label_audit.INFORMATIVE_RULE: no count, no list, no gallery
        reason = str(summary["reason"])
        return {**base, "informative": False, "reason": f"{reason[0].upper()}{reason[1:]}.", "n_suspected": None,
                "share": DASH, "rows": [], "n_left_out": 0, "listed_in": shown_path(folder / "label_issues.csv",
                                                                                    results_dir),
                "gallery": [], "gallery_note": ""}
    table = pd.read_csv(folder / "label_issues.csv", dtype={"path": str, "given": str, "suggested": str})
    suspects = table[table["suspected"].astype(bool)]
    pages = sorted((folder / "label_issues").glob("page-*.png"))
    listed_in = shown_path(folder / "label_issues.csv", results_dir)
    meta_path = folder / "label_issues" / GALLERY_META
    meta = read_json(meta_path) if meta_path.is_file() else {}
    gallery_note = left_out_text(int(meta["shown"]), int(meta["total"]), "suspected label errors", listed_in) \
        if {"shown", "total"} <= set(meta) else ""
    return {**base, "informative": True, "reason": summary.get("reason", ""), "n_suspected": summary["n_suspected"],
            "share": pct1(summary["share"]),
            "rows": [{"rank": int(r["rank"]), "file": Path(r["path"]).name, "given": r["given"],
                      "suggested": r["suggested"], "self_confidence": pct1(r["self_confidence"])}
                     for _, r in suspects.head(limit).iterrows()],
            "n_left_out": max(0, len(suspects) - limit),
            "listed_in": listed_in,
            "gallery": [uri(p) for p in pages],
            "gallery_note": f"{gallery_note[0].upper()}{gallery_note[1:]}." if gallery_note else ""}


def _ood_bands(results_dir: Path, key: RunKey, name: str) -> list[dict]:
    path = run_folder(results_dir, key) / name / "shift.json"
    if not path.is_file():
        return []
    ood = read_json(path).get("ood") or {}
    return [{"band": b["band"], "n": b["n"], "accuracy": str(estimate(b["accuracy"], b.get("low"), b.get("high")))
             if b["n"] else DASH} for b in ood.get("bands", [])]


def _saliency(folder: Path, key: RunKey, uri) -> dict:
    """One run's Grad-CAM page and the mean share of its maps in the central box (from saliency.csv)."""
    table = pd.read_csv(folder / "saliency.csv")
    share = table["cam_centre_share"].dropna() if "cam_centre_share" in table.columns else pd.Series(dtype=float)
    return {"label": key.label, "figure": uri(folder / "saliency.png"), "n": len(table),
            "centre_share": pct1(share.mean()) if len(share) else DASH}


def validity_section(results_dir: str | Path, keys: list[RunKey], datasets: list[str], uri,
                     shared_dir: str | Path | None = None, label_rows: int = LABEL_ROWS) -> dict:
    """Context of the "External validity" section: per dataset (test first, as the reference) every diagnostic.

    Image statistics are read from `shared_dir` (default `results_dir`), where the data steps wrote them; the
    suspected label errors are listed up to `label_rows` per set (config ``report_limits.label_rows``).
    """
    results_dir = Path(results_dir)
    shared = Path(shared_dir) if shared_dir is not None else results_dir
    table = read_validity(results_dir)
    splits = list(dict.fromkeys(k.split_seed for k in keys))
    out = []
    for name in datasets:
        rows = []
        for key in keys:
            sel = table[(table["split_seed"] == key.split_seed) & (table["seed"] == key.seed)
                        & (table["dataset"] == name)]
            if len(sel) != 1:
                raise LeukoError(f"{(results_dir / 'summary' / 'validity.csv').as_posix()}: {len(sel)} rows for "
                                 f"{key.label}, dataset '{name}' (expected 1)")
            r = sel.iloc[0]
            at = {f"at_{int(100 * c)}": pct1(r[f"accuracy_at_{int(100 * c)}"]) for c in COVERAGES}
            rows.append({"label": key.label, "n": int(r["n"]),
                         "accuracy": str(estimate(r["accuracy"], r["accuracy_low"], r["accuracy_high"])),
                         **baseline_cells(r), "auc": _auc(r),
                         "median_percentile": DASH if is_missing(r["median_percentile"])
                         else f"{r['median_percentile']:.0f}",
                         "beyond": pct1(r["share_beyond_test"]), "aurc": num(r["aurc"], 3), **at})
        saliency = [_saliency(run_folder(results_dir, k) / name, k, uri) for k in keys
                    if (run_folder(results_dir, k) / name / "saliency.png").is_file()]
        out.append({
            "name": name, "is_test": name == "test", "anchor": f"validity-{name}",
            "title": "Test split (reference)" if name == "test" else f"External set: {name}",
            "rows": rows,
            "bands": _ood_bands(results_dir, keys[0], name), "bands_run": keys[0].label,
            "image_shift": [s for s in (_image_shift(shared, sp, name, uri) for sp in splits) if s],
            "label_audit": [a for a in (_label_audit(results_dir, sp, name, uri, label_rows) for sp in splits)
                            if a],
            "saliency": saliency,
        })
    figures = []
    for key in keys:
        folder = run_folder(results_dir, key) / "validity"
        if (folder / "risk_coverage.png").is_file():
            figures.append({"label": key.label, "risk_coverage": uri(folder / "risk_coverage.png"),
                            "bands": uri(folder / "ood_bands.png")})
    return {"datasets": out, "figures": figures, "coverages": [f"{100 * c:g}%" for c in COVERAGES],
            "level": f"{100 * float(table['confidence_level'].iloc[0]):g}%" if len(table) else "95%"}


def run_span(values, fmt) -> str:
    """The range over runs as printed: 'low–high', or one value when every run prints the same; '—' when none."""
    vals = [float(v) for v in values if not is_missing(v)]
    if not vals:
        return DASH
    low, high = fmt(min(vals)), fmt(max(vals))
    return low if low == high else f"{low.rstrip('%')}–{high}"


def points_span(values) -> str:
    """Signed differences over runs in percentage points: '+0.9 pp' or '−1.2 to +0.9 pp'; '—' when none."""
    vals = [float(v) for v in values if not is_missing(v)]
    if not vals:
        return DASH
    low, high = (f"{100 * x:+.1f}".replace("-", "\u2212") for x in (min(vals), max(vals)))
    return f"{low} pp" if low == high else f"{low} to {high} pp"


def validity_overview(table: pd.DataFrame, section: dict, keys: list[RunKey]) -> dict:
    """The PDF's tables over sets, a row per dataset of `section` (validity_section): ranges over runs of the
    validity.csv columns, runs whose gain interval lies above or below 0 and whose domain AUC interval lies above 0.5,
    and the set's largest image-statistic shift and label-audit count from the section's own view model."""
    baselines, shift, images = [], [], []
    runs = table[[(int(a), int(b)) in {(k.split_seed, k.seed) for k in keys}
                  for a, b in zip(table["split_seed"], table["seed"])]]
    for d in section["datasets"]:
        rows = runs[runs["dataset"] == d["name"]]
        n = len(rows)
        majority = run_span(rows["majority_accuracy"], pct1)
        classes = ", ".join(dict.fromkeys(str(c) for c in rows["majority_class"].dropna()))
        baselines.append({"dataset": d["name"], "n": run_span(rows["n"], lambda x: f"{x:.0f}"),
                          "accuracy": run_span(rows["accuracy"], pct1),
                          "majority": f"{majority} ({classes})" if classes else DASH,
                          "prior": run_span(rows["prior_accuracy"], pct1), "gain": points_span(rows["gain"]),
                          "above": int((rows["gain_low"] > 0).sum()), "below": int((rows["gain_high"] < 0).sum()),
                          "n_runs": n})
        at = {f"at_{int(100 * c)}": run_span(rows[f"accuracy_at_{int(100 * c)}"], pct1) for c in COVERAGES}
        shift.append({"dataset": d["name"], "auc": run_span(rows["domain_auc"], lambda x: f"{x:.3f}"),
                      "apart": int((rows["domain_auc_low"] > 0.5).sum()), "n_runs": n,
                      "median_percentile": run_span(rows["median_percentile"], lambda x: f"{x:.0f}"),
                      "beyond": run_span(rows["share_beyond_test"], pct1), **at})
        for s in d["image_shift"]:
            audit = next((a for a in d["label_audit"] if a["split_seed"] == s["split_seed"]), None)
            top = s["rows"][0] if s["rows"] else None
            images.append({"dataset": d["name"], "split_seed": s["split_seed"],
                           "largest": DASH if top is None else f"{top['statistic']} ({top['separability']})",
                           "n_ks_small": s["n_ks_small"], "n_statistics": s["n_statistics"],
                           "labels": DASH if audit is None else "not informative" if not audit["informative"]
                           else f"{audit['n_suspected']} of {audit['n']} ({audit['share']})"})
    return {"baselines": baselines, "shift": shift, "images": images, "ks_small": f"{KS_SMALL:g}",
            "several_splits": len({r["split_seed"] for r in images}) > 1}


def validity_by_set(table: pd.DataFrame) -> dict[str, str]:
    """External set name → its limitation sentence from validity.csv (domain AUC, accuracy against majority)."""
    out = {}
    for name, rows in table[table["dataset"] != "test"].groupby("dataset", sort=False):
        runs = f" in each of {len(rows)} runs" if len(rows) > 1 else ""
        if rows["domain_auc"].notna().all():
            text = (f"AUC {_auc(rows.iloc[0])}" if len(rows) == 1 else
                    f"AUC {run_span(rows['domain_auc'], lambda x: f'{x:.3f}')} over {len(rows)} runs")
            subject = (f"Set '{name}' is told apart from the training images with {text}"
                       if (rows["domain_auc_low"] > 0.5).all()
                       else f"Set '{name}' is not clearly told apart from the training images ({text})")
        else:
            subject = f"Set '{name}' (too few images for the domain classifier)"
        acc = run_span(rows["accuracy"], pct1) if len(rows) > 1 else str(
            estimate(rows["accuracy"].iloc[0], rows["accuracy_low"].iloc[0], rows["accuracy_high"].iloc[0]))
        maj = rows["majority_accuracy"].iloc[0]
        if is_missing(maj):
            out[str(name)] = f"{subject}."
            continue
        base = f"the majority baseline {pct1(maj)} (always '{rows['majority_class'].iloc[0]}')"
        if (rows["gain_high"] < 0).all():
            verdict = f"its accuracy {acc} is below {base}{runs}"
        elif (rows["gain_low"] > 0).all():
            verdict = f"its accuracy {acc} is above {base}{runs}"
        else:
            verdict = f"its accuracy {acc} is not shown to differ from {base}"
        out[str(name)] = f"{subject}; {verdict}."
    return out


def summary_external(table: pd.DataFrame) -> dict[tuple[int, int, str], dict]:
    """Majority baseline and domain AUC per (split seed, seed, dataset), formatted for the summary's external table."""
    return {(int(r["split_seed"]), int(r["seed"]), str(r["dataset"])):
            {"auc": _auc(r), **baseline_cells(r)}
            for _, r in table.iterrows()}

