"""The report's "Seed robustness" section: spread over seeds, seed ensembles, agreement and variance components."""

from __future__ import annotations

from pathlib import Path

from leukoreport.base.errors import LeukoError
from leukoreport.base.metric_catalogue import long_label
from leukoreport.report.number_format import DASH, estimate, pct, pct1
from leukoreport.report.read_results import gallery_meta, read_report_json, require_key, shown_path
from leukoreport.report.render import png_data_uri
from leukoreport.report.sections.run_datasets import anchor, dataset_title
from leukoreport.stats.run_tables import RunKey

__all__ = ["robustness_section"]


def _spread_rows(spreads: dict) -> list[dict]:
    """One row per metric: mean ± SD, t interval of the mean (clipped to 0–100%), min and max over runs."""
    rows = []
    for key, sp in spreads.items():
        low, high = sp.get("t_low"), sp.get("t_high")  # a mean of proportions: show the interval within 0–100%
        interval = estimate(sp["mean"], None if low is None else max(0.0, low),
                            None if high is None else min(1.0, high))
        rows.append({"metric": long_label(key), "n_runs": sp["n_runs"], "mean": pct(sp["mean"]),
                     "sd": DASH if sp.get("sd") is None else f"{100 * sp['sd']:.2f}",
                     "interval": f"[{interval.interval}]" if interval.interval else DASH,
                     "min": pct1(sp["min"]), "max": pct1(sp["max"])})
    return rows


def robustness_section(results_dir: Path, keys: list[RunKey], datasets: list[str]) -> dict:
    """Spread across seeds, seed ensemble, per-image agreement and variance components, from results/summary;
    ``overview`` is the PDF's table over datasets: a row per dataset and split seed with its accuracy row (the first
    metric row), seed ensemble and agreement counts (the same values as the per-dataset detail)."""
    folder = results_dir / "summary"
    rpath = folder / "robustness.json"
    rob = read_report_json(rpath)
    for k in ("confidence_level", "across_seeds", "by_split", "variance_components"):
        require_key(rob, k, rpath)
    figures = folder / "robustness"
    out = []
    for name in datasets:
        spreads = rob["across_seeds"].get(name)
        if spreads is None:
            raise LeukoError(f"{rpath.as_posix()}: across_seeds has no entry for dataset '{name}'")
        splits = []
        for split in dict.fromkeys(k.split_seed for k in keys):
            entry = require_key(rob["by_split"], str(split), rpath)["datasets"].get(name)
            if entry is None:
                raise LeukoError(f"{rpath.as_posix()}: by_split.{split} has no entry for dataset '{name}'")
            epath = results_dir / "splits" / str(split) / "ensemble" / name / "metrics.json"
            ens = read_report_json(epath)
            iv = require_key(ens, "intervals", epath)
            e, img, dis = entry["ensemble"], entry["images"], entry["disagreement"]
            splits.append({
                "split_seed": split,
                "ensemble": {"accuracy": estimate(ens["accuracy"], iv["accuracy"]["low"], iv["accuracy"]["high"]),
                             "n_correct": ens["n_correct"], "n": ens["n"],
                             "balanced_accuracy": estimate(ens["balanced_accuracy"], iv["balanced_accuracy"]["low"],
                                                           iv["balanced_accuracy"]["high"]),
                             "macro_f1": estimate(ens["macro_f1"], iv["macro_f1"]["low"], iv["macro_f1"]["high"]),
                             "ece": pct(ens["calibration"]["ece"]),
                             "rank": f"{e['rank']} of {e['n_runs']}"},
                "single_mean": pct(entry["across_seeds"]["accuracy"]["mean"]),
                "images": img,
                "mean_rate": pct(dis["mean_rate"]) if dis["mean_rate"] is not None else DASH,
                "max_rate": pct(dis["max_rate"]) if dis["max_rate"] is not None else DASH,
                "pairs": [{"a": p["run_a"], "b": p["run_b"], "rate": pct(p["rate"]), "disagree": p["disagree"],
                           "n": p["n"], "both_wrong": p["both_wrong"]} for p in dis["pairs"]],
                "galleries": {kind: png_data_uri(figures / f"split{split}_{name}_{kind}.png")
                              for kind in ("always_wrong", "unstable")},
                "gallery_notes": {kind: gallery_meta(figures / f"split{split}_{name}_{kind}.json",
                                                      shown_path(folder / "agreement.csv", results_dir))["note"]
                                  for kind in ("always_wrong", "unstable")},
            })
        out.append({"name": name, "title": dataset_title(name), "anchor": anchor("robustness", name),
                    "n_runs": spreads["accuracy"]["n_runs"], "rows": _spread_rows(spreads),
                    "figure": png_data_uri(figures / f"seeds_{name}.png"), "splits": splits})
    variance = [{"dataset": d, "metric": long_label(m), "n_splits": v["n_splits"],
                 "seeds_per_split": v["seeds_per_split"], "sd_split": f"{100 * v['sd_split']:.2f}",
                 "sd_init": f"{100 * v['sd_initialisation']:.2f}",
                 "share_split": DASH if v.get("share_split") is None else pct(v["share_split"], 0)}
                for d, metrics in rob["variance_components"].items() for m, v in metrics.items()]
    overview = [{"dataset": d["name"], "split_seed": sp["split_seed"], "n_runs": d["n_runs"],
                 "accuracy": next(r for r in d["rows"] if r["metric"] == long_label("accuracy")),
                 "ensemble": sp["ensemble"], "images": sp["images"], "mean_rate": sp["mean_rate"],
                 "max_rate": sp["max_rate"]} for d in out for sp in d["splits"]]
    return {"level": f"{100 * float(rob['confidence_level']):g}%", "datasets": out, "variance": variance,
            "overview": overview,
            "several_splits": len({k.split_seed for k in keys}) > 1}
