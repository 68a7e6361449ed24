"""Turn the files under `results/` (docs/results.md) into the context of the full report and of the summary.

Python computes and formats every number (the modules of `leukoreport.report.sections`); the Jinja2 templates only
lay them out (`leukoreport.report.render`).
"""

from __future__ import annotations

from pathlib import Path

from leukoreport.base.errors import LeukoError
from leukoreport.config.settings import with_defaults
from leukoreport.report.limits import report_limits
from leukoreport.report.model_card import limitations, model_card
from leukoreport.report.read_results import summary_tables
from leukoreport.report.render import png_data_uri
from leukoreport.report.run_facts import RunInfo
from leukoreport.report.sections.by_dataset import attach_diagnostics, by_dataset_section
from leukoreport.report.sections.claims import checklist_section, claims_section, summary_claims
from leukoreport.report.sections.data import data_section
from leukoreport.report.sections.explore import explore_context
from leukoreport.report.sections.external import external_overview, external_section
from leukoreport.report.sections.interventions import interventions_section
from leukoreport.report.sections.leakage import leakage_section
from leukoreport.report.sections.robustness import robustness_section
from leukoreport.report.sections.run_summary import benchmarks_section, config_yaml, weights_section
from leukoreport.report.sections.runs import seed_sections, training_summary
from leukoreport.report.sections.seed_tables import headline_table
from leukoreport.report.sections.validity import read_validity, validity_by_set, validity_overview, validity_section
from leukoreport.stats.run_selection import PRINTED_RUNS_RULE, median_run, printed_runs
from leukoreport.stats.run_tables import run_keys

__all__ = ["TITLE", "build_context", "mark_printed", "summary_context"]


TITLE = "Leukocyte classification — rerun report"


def mark_printed(seed_ctx: list[dict], validity: dict) -> dict:
    """Choose the runs whose own sections the PDF keeps (stats.run_selection.PRINTED_RUNS_RULE on the test split's
    accuracy, the first dataset when there is no test split) and mark every per-run part: ``printed`` on each run,
    on each run's datasets (the PDF keeps a printed run's test split only), and on the validity section's Grad-CAM
    pages and risk-coverage figures, which the PDF keeps for the median run only. Returns the rule and the printed
    runs' labels for the report to state."""
    names = [d["name"] for d in seed_ctx[0]["datasets"]]
    index = names.index("test") if "test" in names else 0
    accuracies = [s["datasets"][index]["_raw"]["accuracy"] for s in seed_ctx]
    chosen, median = printed_runs(accuracies), seed_ctx[median_run(accuracies)]["label"]
    labels = []
    for i, s in enumerate(seed_ctx):
        s["printed"] = i in chosen
        for j, d in enumerate(s["datasets"]):
            d["printed"] = s["printed"] and j == index
        if s["printed"]:
            labels.append(s["label"])
    for d in validity["datasets"]:
        for g in d["saliency"]:
            g["printed"] = g["label"] == median
    for f in validity["figures"]:
        f["printed"] = f["label"] == median
    return {"rule": PRINTED_RUNS_RULE, "labels": labels, "median": median, "dataset": names[index],
            "n_runs": len(seed_ctx)}


def build_context(results_dir: str | Path, config: dict, splits: list[int], seeds: list[int], datasets: list[str],
                  run_info: RunInfo, shared_dir: str | Path | None = None,
                  claims_dir: str | Path | None = None) -> dict:
    """Everything the template shows, formatted, from the files of docs/results.md.

    `shared_dir` holds the splits, external lists, weights and leakage audit (default: `results_dir`); `claims_dir`
    the claims files (default: `results_dir`/summary). Without claims.json the Claims section is left out and the
    numbering starts at the run summary.
    """
    results_dir = Path(results_dir)
    claims_dir = Path(claims_dir) if claims_dir is not None else results_dir / "summary"
    claims = claims_section(claims_dir)
    lead = 1 if claims else 0  # the Claims section comes first
    shared = Path(shared_dir) if shared_dir is not None else results_dir
    seeds = [int(s) for s in seeds]
    datasets = [str(d) for d in datasets]
    if not seeds:
        raise LeukoError("seeds: no seeds to report")
    if not datasets:
        raise LeukoError("datasets: no datasets to report")
    config = dict(config or {})
    limits = report_limits(config)
    filled, _ = with_defaults(config)  # the schema's defaults where the config leaves a key out
    weights = weights_section(shared, filled["arch"])
    keys = run_keys(splits, seeds)
    if not keys:
        raise LeukoError("split_seeds: no split seeds to report")
    table, gaps = summary_tables(results_dir)
    seed_ctx = seed_sections(results_dir, keys, datasets, gaps, limits)
    for number, s in enumerate(seed_ctx, start=9 + lead):
        s["number"] = number
    classes = seed_ctx[0]["datasets"][0]["per_class"]
    classes = [r["label"] for r in classes]
    notes = []
    recipe = seed_ctx[0]["_recipe"]
    for s in seed_ctx[1:]:
        if s["_recipe"] != recipe:
            notes.append(f"{s['label']} was trained with a different recipe from {seed_ctx[0]['label']}; "
                         f"see its section")
    data = data_section(shared, keys[0].split_seed, datasets, classes, config)
    leakage = [leakage_section(shared, split, limits=limits) for split in dict.fromkeys(k.split_seed for k in keys)]
    validity = read_validity(results_dir)
    external = external_section(gaps, data, validity)
    validity_ctx = validity_section(results_dir, keys, datasets, png_data_uri, shared, limits["label_rows"])
    printed = mark_printed(seed_ctx, validity_ctx)
    robustness = robustness_section(results_dir, keys, datasets)
    side_by_side = by_dataset_section(results_dir, keys, seed_ctx, datasets, png_data_uri)
    attach_diagnostics(side_by_side, robustness, external, validity_ctx)
    validity_ctx["overview"] = validity_overview(validity, validity_ctx, keys)
    return {
        "title": TITLE,
        "run": {"date": run_info.date, "git_commit": run_info.git_commit, "device": run_info.device,
                "python": run_info.python,
                "packages": [{"name": k, "version": v} for k, v in run_info.packages.items()]},
        "weights": weights,
        "recipe": recipe,
        "config_yaml": config_yaml(config),
        "benchmarks": benchmarks_section(results_dir),
        "data": data,
        "classes": classes,
        "seeds": seed_ctx,
        "seed_groups": [{"title": None, "anchor": None, "label": None, "printed": True, "seeds": seed_ctx}],
        "claims": claims,
        "checklist": checklist_section(claims_dir),
        "variants": None,
        "lead": lead,  # sections before the run summary
        "shift": lead,  # sections before the data section beyond the run summary (the Variants section adds one)
        "by_dataset": side_by_side,
        "printed": printed,
        "leakage": leakage,
        "external": external,
        "external_overview": external_overview(gaps, external),
        "robustness": robustness,
        "validity": validity_ctx,
        "interventions": interventions_section(results_dir),  # None when validity.interventions is off
        "card": model_card(filled, weights, recipe, data, table, leakage, keys, validity_by_set(validity)),
        "notes": notes,
        "explore": explore_context(results_dir, keys, datasets, shared.resolve().parent),  # the HTML's explorer data
    }


def summary_context(results_dir: str | Path, config: dict, splits: list[int], seeds: list[int], datasets: list[str],
                    run_info: RunInfo, shared_dir: str | Path | None = None,
                    claims_dir: str | Path | None = None) -> dict:
    """What the two-page summary shows, from the summary tables, train.json files, the leakage audit and the claims
    files (`claims_dir`, default `results_dir`/summary)."""
    results_dir = Path(results_dir)
    claims = summary_claims(claims_section(Path(claims_dir) if claims_dir is not None else results_dir / "summary"))
    shared = Path(shared_dir) if shared_dir is not None else results_dir
    seeds = [int(s) for s in seeds]
    keys = run_keys(splits, seeds)
    if not keys:
        raise LeukoError("seeds: no seeds to report")
    config = dict(config or {})
    filled, _ = with_defaults(config)  # the schema's defaults where the config leaves a key out
    weights = weights_section(shared, filled["arch"])
    trains = [training_summary(results_dir, key) for key in keys]
    classes = list(trains[0]["classes"])
    data = data_section(shared, keys[0].split_seed, [str(d) for d in datasets], classes, config)
    table, gaps = summary_tables(results_dir)
    leakage = [leakage_section(shared, split, with_pages=False)
               for split in dict.fromkeys(k.split_seed for k in keys)]
    headline = headline_table(table, "test")
    validity = read_validity(results_dir)
    robustness = robustness_section(results_dir, keys, ["test"])["datasets"][0]
    for row, t in zip(headline["rows"], trains):
        row.update({k: t[k] for k in ("epochs_run", "best_epochs", "seconds")})
    return {
        "title": "Leukocyte classification with a two-phase ResNet18: rerun summary",
        "run": {"date": run_info.date, "git_commit": run_info.git_commit, "device": trains[0]["device"]},
        "weights": weights,
        "recipe": trains[0]["recipe"],
        "classes": classes,
        "seeds": seeds,
        "split_seeds": list(dict.fromkeys(k.split_seed for k in keys)),
        "runs": [k.label for k in keys],
        "data": data,
        "test": headline,
        "external": external_section(gaps, data, validity),
        "leakage": leakage,
        "robustness": {"rows": robustness["rows"][:4], "splits": robustness["splits"],
                       "n_runs": robustness["n_runs"]},
        "figures": {"curves": png_data_uri(results_dir / "summary" / "curves.png"),
                    "confusion": png_data_uri(results_dir / "summary" / "confusion_test.png")},
        "interventions": interventions_section(results_dir),
        "limitations": limitations(filled, weights, data, table, leakage, keys, validity_by_set(validity),
                                   leakage_in_section=True),
        "claims": claims,
        "lead": 1 if claims else 0,  # the claims table is section 1 of the summary and of the report
        "variants": None,
        "level": f"{100 * float(table['confidence_level'].iloc[0]):g}%",
    }
