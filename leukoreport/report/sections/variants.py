"""The "Variants" section of the full report and the summary's variant table, from results/summary/variants.json."""

from __future__ import annotations

from pathlib import Path

from leukoreport.base import metric_catalogue
from leukoreport.base.atomic_io import read_json
from leukoreport.config.variants import variant_root
from leukoreport.report.build import build_context, summary_context
from leukoreport.report.limits import report_limits
from leukoreport.report.number_format import DASH, estimate, gap_estimate, pct1
from leukoreport.report.read_results import summary_tables
from leukoreport.report.render import png_data_uri
from leukoreport.report.run_facts import RunInfo
from leukoreport.report.sections.explore import add_variant_runs
from leukoreport.report.sections.run_summary import config_yaml
from leukoreport.report.sections.runs import seed_sections
from leukoreport.report.verdict_style import verdict_style
from leukoreport.stats.paired import p_value
from leukoreport.stats.run_tables import run_folder, run_keys

__all__ = ["init_note", "overrides_text", "summary_table", "variants_report_context", "variants_section",
           "variants_summary_context", "verdict_text"]


def _flatten(overrides: dict, prefix: str = "") -> list[str]:
    """{'augmentation': {'p_affine': 0.0}} -> ['augmentation.p_affine = 0.0']."""
    out = []
    for key, value in overrides.items():
        name = f"{prefix}{key}"
        out += _flatten(value, f"{name}.") if isinstance(value, dict) and value else [f"{name} = {value}"]
    return out


def overrides_text(overrides: dict | None) -> str:
    """A variant's overrides as one line; 'the base recipe' when it changes nothing."""
    return "; ".join(_flatten(overrides or {})) or "the base recipe (no override)"


def init_note(root: Path, keys: list) -> str:
    """'; initialisation: random (...)' when a variant's runs (train.json `init`) did not start from ImageNet
    weights, e.g. GroupNorm, for which torchvision has none; '' when they did."""
    inits = {read_json(run_folder(root, k) / "train.json").get("init", "") for k in keys
             if (run_folder(root, k) / "train.json").is_file()}
    other = sorted(i for i in inits if not str(i).startswith("ImageNet"))
    return f"; initialisation: {', '.join(other)}" if other else ""


def _index(rows: list[dict]) -> dict[tuple[str, str, str], dict]:
    return {(r["variant"], r["dataset"], r["metric"]): r for r in rows}


def _title(metric: str) -> str:
    """'balanced accuracy' -> 'Balanced accuracy'; 'ECE' stays as it is."""
    label = metric_catalogue.label(metric)
    return label[0].upper() + label[1:]


def verdict_text(comparison: dict) -> str:
    """The verdict, with '*' when the probability of improvement over pairs of runs still includes 0.5."""
    shaky = comparison["verdict"] in ("better", "worse") and not comparison.get("beats_seed_noise", True)
    return comparison["verdict"] + ("*" if shaky else "")


def _cell(summary: dict, comparison: dict | None) -> dict:
    """One table cell: mean [interval] over seeds and the verdict against the reference."""
    return {"mean": str(estimate(summary["mean"], summary["mean_low"], summary["mean_high"])),
            "verdict": verdict_text(comparison) if comparison else "reference",
            "css": verdict_style(comparison["verdict"] if comparison else None).css,
            "difference": str(gap_estimate(comparison["difference"], comparison["low"], comparison["high"]))
            if comparison else DASH}


def variants_section(result: dict, overrides: dict[str, dict], figures_dir: str | Path, uri=png_data_uri) -> dict:
    """Template context of the Variants section: the variants, a table per metric, details and figures."""
    figures_dir = Path(figures_dir)
    summary, comparisons = _index(result["summary"]), _index(result["comparisons"])
    reference, datasets, metrics = result["reference"], result["datasets"], result["metrics"]
    n_seeds = {r["variant"]: r["n_seeds"] for r in result["summary"]}
    variants = [{"name": v, "overrides": overrides_text(overrides.get(v)), "is_reference": v == reference,
                 "n_seeds": n_seeds.get(v, 0)} for v in result["variants"]]
    tables = []
    for m in metrics:
        rows = [{"variant": v, "is_reference": v == reference,
                 "cells": [_cell(summary[(v, d, m)], comparisons.get((v, d, m))) for d in datasets]}
                for v in result["variants"]]
        tables.append({"metric": m, "label": metric_catalogue.label(m), "title": _title(m), "rows": rows,
                       "lower_better": m == "ece"})
    detail = []
    for d in datasets:
        rows = []
        for v in result["variants"]:
            if v == reference:
                continue
            for m in metrics:
                c, s = comparisons[(v, d, m)], summary[(v, d, m)]
                rows.append({"variant": v, "metric": metric_catalogue.label(m),
                             "mean_sd": f"{pct1(s['mean'])} ± {100 * s['sd']:.1f}" if s["sd"] is not None
                             else pct1(s["mean"]),
                             "iqm": str(estimate(s["iqm"], s["iqm_low"], s["iqm_high"])),
                             "difference": str(gap_estimate(c["difference"], c["low"], c["high"])),
                             "p_holm": p_value(c["p_holm"]), "verdict": verdict_text(c),
                             "css": verdict_style(c["verdict"]).css,
                             "improvement": str(estimate(c["p_improvement"], c["pi_low"], c["pi_high"], "num"))})
        n_images = sorted({summary[(v, d, metrics[0])]["n_images"] for v in result["variants"]})
        detail.append({"dataset": d, "title": "Test split" if d == "test" else f"External set “{d}”",
                       "n_images": " or ".join(str(n) for n in n_images), "rows": rows})
    intervals = [{"label": metric_catalogue.label(m), "title": _title(m),
                  "figure": uri(figures_dir / f"intervals_{m}.png")}
                 for m in metrics if (figures_dir / f"intervals_{m}.png").is_file()]
    improvement = figures_dir / "improvement.png"
    return {
        "reference": reference,
        "variants": variants,
        "datasets": datasets,
        "dataset_titles": ["test" if d == "test" else d for d in datasets],
        "tables": tables,
        "detail": detail,
        "n_comparisons": result["n_comparisons"],
        "alpha": f"{result['alpha']:g}",
        "confidence": f"{100 * result['confidence']:g}%",
        "n_resamples": f"{result['n_resamples']:,}".replace(",", "\u2009"),
        "intervals": intervals,
        "improvement": uri(improvement) if improvement.is_file() else None,
        "notes": list(result.get("notes", [])) + [f"{s['dataset']}: {s['reason']}" for s in result.get("skipped", [])],
    }


def summary_table(result: dict, metric: str = "accuracy") -> dict:
    """The summary's variant × dataset table for one metric, and the verdicts of the other metrics in words."""
    summary, comparisons = _index(result["summary"]), _index(result["comparisons"])
    rows = []
    for v in result["variants"]:
        cells = [_cell(summary[(v, d, metric)], comparisons.get((v, d, metric))) for d in result["datasets"]]
        others = [f"{metric_catalogue.label(m)} {verdict_text(c)} on {'test' if d == 'test' else d}"
                  for (name, d, m), c in comparisons.items()
                  if name == v and m != metric and c["verdict"] != "no difference detected"]
        rows.append({"variant": v, "is_reference": v == result["reference"], "cells": cells,
                     "others": "; ".join(others) or (DASH if v == result["reference"] else "none")})
    return {"metric": metric_catalogue.label(metric), "datasets": result["datasets"], "rows": rows,
            "reference": result["reference"], "n_comparisons": result["n_comparisons"],
            "confidence": f"{100 * result['confidence']:g}%"}


def _prefix_anchors(seeds: list[dict], variant: str) -> None:
    """Make the run and dataset anchors of one variant's sections unique in the combined report."""
    for s in seeds:
        s["anchor"] = f"{variant}-{s['anchor']}"
        s["title"] = f"Variant {variant} · {s['title'][0].lower()}{s['title'][1:]}"
        for d in s["datasets"]:
            d["anchor"] = f"{variant}-{d['anchor']}"


def variants_report_context(shared_dir: str | Path, config: dict, variants: dict[str, dict], reference: str,
                            splits: list[int], seeds: list[int], datasets: list[str], run_info: RunInfo,
                            result: dict, figures_dir: str | Path, claims_dir: str | Path | None = None) -> dict:
    """The full report of a variants run: the Claims section (when `claims_dir` or the reference's summary folder
    holds claims.json), the reference's sections, the Variants section, every variant's runs."""
    shared = Path(shared_dir)
    context = build_context(variant_root(reference, shared), variants[reference], splits,
                            seeds, datasets, run_info, shared, claims_dir)
    context["config_yaml"] = config_yaml(config)
    lead = context["lead"]
    context["shift"] = lead + 1
    context["variants"] = variants_section(result, dict(config.get("variants") or {}), figures_dir)
    for row in context["variants"]["variants"]:  # the report says when a variant had to start from random weights
        row["overrides"] += init_note(variant_root(row["name"], shared), run_keys(splits, seeds))
    context["notes"] = [f"Sections {3 + lead}–{9 + lead} show the reference variant “{reference}” "
                        f"(results/variants/{reference}/); section {2 + lead} compares every variant with it, and "
                        f"the sections from {10 + lead} on show each variant's runs: every variant's in report.html, "
                        f"the reference's {' and '.join(context['printed']['labels'])} in this PDF (section "
                        f"{5 + lead} gives the rule)."] + context["notes"]
    keys = run_keys(splits, seeds)
    groups, number = [], 10 + lead
    for name in variants:
        root = variant_root(name, shared)
        runs = context["seeds"] if name == reference else seed_sections(
            root, keys, datasets, summary_tables(root)[1], report_limits(variants[name]))
        if name != reference:  # per variant × seed detail only in the HTML
            for s in runs:
                s["printed"] = False
                for d in s["datasets"]:
                    d["printed"] = False
        _prefix_anchors(runs, name)
        for s in runs:
            s["number"], number = number, number + 1
        groups.append({"title": f"Variant “{name}”{' (reference)' if name == reference else ''}: "
                                f"{overrides_text((config.get('variants') or {}).get(name))}",
                       "anchor": f"variant-{name}", "label": f"variant {name}", "seeds": runs,
                       "printed": any(s["printed"] for s in runs)})
    context["seed_groups"] = groups
    context["explore"] = add_variant_runs(context["explore"], shared, list(variants), reference, keys, datasets)
    return context


def variants_summary_context(shared_dir: str | Path, config: dict, variants: dict[str, dict], reference: str,
                             splits: list[int], seeds: list[int], datasets: list[str], run_info: RunInfo,
                             result: dict, claims_dir: str | Path | None = None) -> dict:
    """The two-page summary of a variants run: the claims table (as in variants_report_context), the reference's
    summary with the variant table."""
    shared = Path(shared_dir)
    context = summary_context(variant_root(reference, shared), variants[reference], splits,
                              seeds, datasets, run_info, shared, claims_dir)
    context["variants"] = summary_table(result)
    return context
