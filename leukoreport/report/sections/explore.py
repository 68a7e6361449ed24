"""The data of the HTML report's explorer (templates/partials/explore.js): every run's predictions per dataset, and a
small thumbnail of every evaluated image, so that a click on a confusion-matrix cell shows the images behind it.

Only the HTML uses it: base.html.j2 writes it into a `<script type="application/json">` block, which WeasyPrint does
not print. Numbers are formatted here (number_format), as everywhere in the report.

Layout of the JSON (`explore_payload`)::

    {"version": 1, "thumbnail_px": 96,
     "datasets": {NAME: {"title": "test split", "classes": [CLASS, ...],
                         "images": [[PATH, TRUE_CLASS_INDEX, THUMBNAIL_DATA_URI], ...],
                         "runs": [{"label": "seed 1", "anchor": "run-42-1", "variant": null, "main": true,
                                   "rows": [[IMAGE_INDEX, PREDICTED_CLASS_INDEX, "p(predicted)", "p(true)"],
                                            ...]}]}}}

One row per line of the run's predictions.csv. `main` marks the runs a confusion table without `data-run` sums
(the runs of the report's own results folder; with variants, the reference's).
"""

from __future__ import annotations

import json
from pathlib import Path

from leukoreport.base.errors import LeukoError
from leukoreport.config.variants import variant_root
from leukoreport.report.figures.thumbnails import THUMBNAIL_SIDE, thumbnail_uri
from leukoreport.report.number_format import pct
from leukoreport.report.read_results import need_file, read_report_json, require_key
from leukoreport.report.sections.run_datasets import anchor, dataset_title
from leukoreport.stats.metrics import read_predictions
from leukoreport.stats.run_tables import RunKey, run_folder

__all__ = ["ExploreData", "add_variant_runs", "explore_context", "script_json"]


def script_json(obj: object) -> str:
    """`obj` as compact JSON that is safe inside an HTML `<script>` element: `<`, `>` and `&` as \\u escapes (no
    `</script>` or `<!--` can end or change the element), non-ASCII kept."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


class ExploreData:
    """The explorer's payload; Jinja2 writes it as script-safe JSON (`__html__`), so `{{ explore.data }}` needs no
    `|safe` and the variants report can add runs before the template renders."""

    def __init__(self, payload: dict, image_root: Path):
        self.payload = payload
        self.image_root = image_root
        self._thumbs: dict[str, str] = {}

    def __html__(self) -> str:
        return script_json(self.payload)

    def __str__(self) -> str:
        return self.__html__()

    def thumbnail(self, path: str) -> str:
        """One thumbnail per image file, made once even when several datasets list the file."""
        if path not in self._thumbs:
            self._thumbs[path] = thumbnail_uri(self.image_root / path)
        return self._thumbs[path]

    def add_run(self, results_dir: Path, key: RunKey, datasets: list[str], variant: str | None, main: bool) -> None:
        """Add one run's predictions on every dataset (and the thumbnails of images not seen yet)."""
        for name in datasets:
            folder = run_folder(results_dir, key) / name
            mpath = folder / "metrics.json"
            classes = [str(c) for c in require_key(read_report_json(mpath), "classes", mpath)]
            ppath = need_file(folder / "predictions.csv")
            pred = read_predictions(ppath, classes)
            entry = self.payload["datasets"].setdefault(
                name, {"title": dataset_title(name), "classes": classes, "images": [], "runs": []})
            if entry["classes"] != classes:
                raise LeukoError(f"{mpath.as_posix()}: classes {classes} differ from another run's "
                                 f"{entry['classes']} on {name}")
            index = {img[0]: i for i, img in enumerate(entry["images"])}
            rows = []
            for path, label, predicted, *probs in pred[["path", "label", "prediction",
                                                        *(f"prob_{c}" for c in classes)]].itertuples(index=False):
                true, guess = classes.index(label), classes.index(predicted)
                if path not in index:
                    index[path] = len(entry["images"])
                    entry["images"].append([path, true, self.thumbnail(path)])
                elif entry["images"][index[path]][1] != true:
                    raise LeukoError(f"{ppath.as_posix()}: {path} is labelled {label}, another run's predictions "
                                     f"label it {classes[entry['images'][index[path]][1]]}")
                rows.append([index[path], guess, pct(probs[guess], 1), pct(probs[true], 1)])
            entry["runs"].append({"label": key.label, "anchor": anchor("run", key.split_seed, key.seed),
                                  "variant": variant, "main": main, "rows": rows})


def explore_context(results_dir: str | Path, keys: list[RunKey], datasets: list[str],
                    image_root: str | Path | None = None) -> dict:
    """The context key `explore` of the full report: the explorer's data for every run in `keys` on every dataset.

    Image paths in predictions.csv are relative to `image_root` (default: the folder holding `results_dir`, the
    project root where the workflow runs); absolute paths stay as they are.
    """
    results_dir = Path(results_dir)
    root = Path(image_root) if image_root is not None else results_dir.resolve().parent
    data = ExploreData({"version": 1, "thumbnail_px": THUMBNAIL_SIDE, "datasets": {}}, root)
    for key in keys:
        data.add_run(results_dir, key, [str(d) for d in datasets], None, True)
    return {"data": data}


def add_variant_runs(explore: dict, shared_dir: str | Path, variants: list[str], reference: str,
                     keys: list[RunKey], datasets: list[str]) -> dict:
    """The variants report's `explore`: the reference's runs (already in `explore`, from build_context) marked as
    the reference's, then every other variant's runs from results/variants/NAME/."""
    data: ExploreData = explore["data"]
    for entry in data.payload["datasets"].values():
        for run in entry["runs"]:
            run["variant"] = reference
    for name in variants:
        if name != reference:
            for key in keys:
                data.add_run(variant_root(name, shared_dir), key, [str(d) for d in datasets], name, False)
    return explore
