"""The report's "Data" section: split counts, external sets and their declared provenance."""

from __future__ import annotations

from pathlib import Path

from leukoreport.config.provenance import Provenance, declared_provenance
from leukoreport.data.split import split_counts
from leukoreport.report.read_results import read_report_csv, read_report_json

__all__ = ["data_section"]


def _origin(provenance: Provenance) -> str:
    """'facts; citation' of declared provenance ('' when nothing is declared)."""
    parts = [p for p in (provenance.facts(), provenance.citation) if p]
    return "; ".join(parts) if parts else ""


def data_section(results_dir: Path, split_seed: int, datasets: list[str], classes: list[str], config: dict) -> dict:
    spath = results_dir / "splits" / str(split_seed) / "split.csv"
    split = read_report_csv(spath, ["path", "label", "split"], dtype={"path": str, "label": str, "split": str})
    table = split_counts(split)
    split_rows = [{"label": r["label"], "train": int(r["train"]), "valid": int(r["valid"]),
                   "test": int(r["test"]), "total": int(r["total"]), "is_total": r["label"] == "total"
                   and i == len(table) - 1}
                  for i, (_, r) in enumerate(table.iterrows())]
    external, provenance = [], declared_provenance(config)
    for name in datasets:
        if name == "test":
            continue
        epath = results_dir / "data" / "external" / f"{name}.csv"
        ext = read_report_csv(epath, ["path", "label"], dtype={"path": str, "label": str})
        counts = ext["label"].value_counts()
        labels = list(classes) + sorted(set(counts.index) - set(classes))
        declared = provenance.external.get(name, Provenance())
        classes_json = epath.with_suffix(".json")  # the class folders matched (rule external)
        mapped = read_report_json(classes_json).get("mapped", []) if classes_json.is_file() else []
        external.append({"name": name,
                         "rows": [{"label": c, "count": int(counts.get(c, 0))} for c in labels],
                         "total": int(len(ext)), "origin": _origin(declared),
                         "relation": provenance.relation(name),
                         "mapped": mapped})
    columns = list(dict.fromkeys(r["label"] for e in external for r in e["rows"]))  # the classes of every set
    for e in external:
        counts = {r["label"]: r["count"] for r in e["rows"]}
        e["cells"] = [counts.get(c, 0) for c in columns]
    train = provenance.training
    citation = _origin(train) or "not given in the config (data_provenance)"
    return {"citation": citation, "split_seed": split_seed, "split_rows": split_rows, "n_images": int(len(split)),
            "external": external, "external_columns": columns}
