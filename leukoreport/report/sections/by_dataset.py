"""The report's "All seeds side by side" section: one subsection per dataset with every run in a row, the seed
ensemble, the confusion matrix summed over the runs and the images most runs get wrong."""

from __future__ import annotations

from pathlib import Path

from leukoreport.base.errors import LeukoError
from leukoreport.report.number_format import mean_sd
from leukoreport.report.read_results import gallery_meta, read_report_json, shown_path
from leukoreport.report.sections.run_datasets import anchor, confusion_table, dataset_title, estimate_cells
from leukoreport.stats.run_tables import RunKey

__all__ = ["attach_diagnostics", "by_dataset_section", "ensemble_label"]

_KEYS = ("accuracy", "balanced_accuracy", "macro_f1", "ece", "brier", "log_loss")


def ensemble_label(split_seed: int, n_splits: int) -> str:
    """'seed ensemble', or 'split 42 · seed ensemble' when the run has several split seeds."""
    return "seed ensemble" if n_splits == 1 else f"split {split_seed} · seed ensemble"


def _summed(seeds: list[dict], index: int, path: Path) -> dict:
    """The confusion matrix of dataset `index` summed over every run's (from each run's metrics.json)."""
    labels = seeds[0]["datasets"][index]["confusion"]["labels"]
    total = [[0] * len(labels) for _ in labels]
    for s in seeds:
        cm = s["datasets"][index]["confusion"]
        if cm["labels"] != labels:
            raise LeukoError(f"{path.as_posix()}: {s['label']} has confusion labels {cm['labels']}, expected {labels}")
        for i, row in enumerate(cm["rows"]):
            for j, cell in enumerate(row["cells"]):
                total[i][j] += int(cell["value"])
    return confusion_table(labels, total, path)


def by_dataset_section(results_dir: str | Path, keys: list[RunKey], seeds: list[dict], datasets: list[str],
                       uri) -> dict:
    """Per dataset: a row per run (estimates with intervals, calibration; the `seeds` contexts of
    sections.runs.seed_sections, in `keys` order), the seed ensemble of each split seed
    (splits/{split}/ensemble/{dataset}/metrics.json), mean ± SD over runs, the confusion matrix summed over the runs
    and the gallery of the images most runs get wrong (summary/robustness/split{split}_{dataset}_most_wrong.png)."""
    results_dir = Path(results_dir)
    splits = list(dict.fromkeys(k.split_seed for k in keys))
    figures = results_dir / "summary" / "robustness"
    out = []
    for i, name in enumerate(datasets):
        rows = [{"label": s["label"], "ensemble": False, **{k: s["datasets"][i][k] for k in ("ci", "calibration")}}
                for s in seeds]
        for split in splits:
            epath = results_dir / "splits" / str(split) / "ensemble" / name / "metrics.json"
            rows.append({"label": ensemble_label(split, len(splits)), "ensemble": True,
                         **estimate_cells(read_report_json(epath), epath)})
        raw = [s["datasets"][i]["_raw"] for s in seeds]
        mean = None
        if len(seeds) >= 2:
            mean = {k: mean_sd([r[k] for r in raw], "pct" if k in _KEYS[:4] else "num") for k in _KEYS}
        galleries = []
        for split in splits:
            png = figures / f"split{split}_{name}_most_wrong.png"
            meta = gallery_meta(png.with_suffix(".json"), shown_path(results_dir / "summary" / "agreement.csv",
                                                                     results_dir))
            galleries.append({"split_seed": split, "figure": uri(png), "note": meta["note"],
                              "total": meta.get("total")})
        first = seeds[0]["datasets"][i]
        out.append({"name": name, "title": dataset_title(name), "anchor": anchor("dataset", name), "n": first["n"],
                    "baseline": first["baseline"], "rows": rows, "mean": mean,
                    "confusion": _summed(seeds, i, results_dir / "splits"), "n_runs": len(seeds),
                    "galleries": galleries, "several_splits": len(splits) > 1})
    training = [{"label": s["label"], "epochs_run": s["epochs_run"], "best_epochs": s["best_epochs"],
                 "seconds": s["seconds"]} for s in seeds]
    seconds_mean = mean_sd([s["_seconds"] for s in seeds], "seconds") if len(seeds) >= 2 else None
    return {"datasets": out, "training": training, "seconds_mean": seconds_mean}


def attach_diagnostics(by_dataset: dict, robustness: dict, external: list[dict], validity: dict) -> None:
    """Give each dataset's subsection its runs' rows of the other sections' view models (the same formatted values):
    the gap to the test split (External sets), the baseline, domain AUC and OOD columns (External validity) and the
    seed ensemble and agreement sentence of each split seed (Seed robustness)."""
    gaps = {(e["name"], r["label"]): r["gap"] for e in external for r in e["rows"]}
    spread = {d["name"]: d for d in robustness["datasets"]}
    shift = {d["name"]: d for d in validity["datasets"]}
    for t in by_dataset["datasets"]:
        v = shift.get(t["name"])
        t["diagnostics"] = [] if v is None else [
            {"label": r["label"], "gap": gaps.get((t["name"], r["label"])), "gain": r["gain"], "below": r["below"],
             "auc": r["auc"], "median_percentile": r["median_percentile"], "beyond": r["beyond"],
             "at_80": r["at_80"]} for r in v["rows"]]
        t["has_gap"] = any(r["gap"] is not None for r in t["diagnostics"])
        t["agreement"] = spread[t["name"]]["splits"] if t["name"] in spread else []
