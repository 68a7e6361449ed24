"""Model card (Mitchell et al. 2019) and limitations, computed from the run's result tables."""

from __future__ import annotations

import pandas as pd

from leukoreport.formatting import estimate, mean_sd, pct1
from leukoreport.summary import RunKey

WIDE_INTERVAL = 0.10  # an accuracy interval wider than 10 percentage points is called "wide"


def _join(items: list[str]) -> str:
    return ", ".join(items) if items else "none"


def metric_rows(table: pd.DataFrame) -> list[dict]:
    """Per dataset: seeds, mean ± SD of accuracy, the per-seed range, and the span of the per-seed intervals."""
    rows = []
    for dataset, group in table.groupby("dataset", sort=False):
        acc = group["accuracy"].astype(float)
        spread = mean_sd(list(acc), "pct") if len(group) >= 2 else None
        rows.append({
            "dataset": dataset,
            "n": int(group["n"].iloc[0]),
            "seeds": len(group),
            "accuracy": str(spread) if spread else str(estimate(acc.iloc[0], group["accuracy_low"].iloc[0],
                                                                  group["accuracy_high"].iloc[0])),
            "range": f"{pct1(acc.min())}–{pct1(acc.max())}",
            "interval_span": f"{pct1(group['accuracy_low'].min())}–{pct1(group['accuracy_high'].max())}",
            "balanced_accuracy": str(mean_sd(list(group["balanced_accuracy"]), "pct")) if len(group) >= 2
            else pct1(group["balanced_accuracy"].iloc[0]),
            "ece": str(mean_sd(list(group["ece"]), "pct")) if len(group) >= 2 else pct1(group["ece"].iloc[0]),
        })
    return rows


def _seeds_sentence(runs: list[RunKey]) -> str:
    seeds = sorted({r.seed for r in runs})
    splits = list(dict.fromkeys(r.split_seed for r in runs))
    if len(splits) == 1:
        return (f"{len(seeds)} training seed(s) on one split (split seed {splits[0]}): variation between splits "
                "is not measured.")
    return (f"{len(seeds)} training seed(s) on each of {len(splits)} splits (split seeds "
            f"{', '.join(map(str, splits))}); the robustness section separates the two sources of variation.")


def _leakage_sentence(audits: list[dict]) -> str:
    pairs = sum(a["n_pairs"] for a in audits)
    if pairs:
        exact, near = sum(a["n_exact"] for a in audits), sum(a["n_near"] for a in audits)
        where = "" if len(audits) == 1 else f" over {len(audits)} split seeds"
        return (f"The leakage audit found {pairs} duplicate pair(s){where} ({exact} exact, {near} near); results on "
                "affected splits may be optimistic.")
    a = audits[0]
    return (f"The leakage audit found no exact or near duplicates (perceptual hash, Hamming distance ≤ "
            f"{a['max_distance']}) among {a['n_images']} images; it cannot detect different images of the same "
            "patient or slide.")


def limitations(config: dict, weights: dict, data: dict, table: pd.DataFrame, leakage: list[dict],
                runs: list[RunKey], validity: list[str] | None = None) -> list[str]:
    """Plain sentences on what this run cannot show, each computed from the run's files."""
    out = []
    if weights.get("pretrained") != "yes":
        out.append(f"Backbone initialised as '{weights.get('init')}', not with ImageNet weights: this is not the "
                   "paper's recipe, and its accuracy is not comparable to the paper's 99.47%.")
    test = table[table["dataset"] == "test"]
    if len(test):
        width = float((test["accuracy_high"] - test["accuracy_low"]).mean())
        level = f"{100 * float(test['confidence_level'].iloc[0]):g}%"
        out.append(f"The test split has {int(test['n'].iloc[0])} images; the {level} "
                   f"interval of one seed's accuracy is {100 * width:.1f} percentage points wide on average.")
    out.append(_seeds_sentence(runs))
    if config.get("max_per_class"):
        out.append(f"Training data subsampled to {config['max_per_class']} images per class (max_per_class).")
    for e in data.get("external", []):
        present = [r["label"] for r in e["rows"] if r["count"] > 0]
        rows = table[table["dataset"] == e["name"]]
        if rows.empty:
            continue
        width = float((rows["accuracy_high"] - rows["accuracy_low"]).max())
        if width > WIDE_INTERVAL or len(present) < len(e["rows"]):
            span = f"{pct1(rows['accuracy_low'].min())}–{pct1(rows['accuracy_high'].max())}"
            out.append(f"External set '{e['name']}' has {e['total']} image(s) of {len(present)} class(es) "
                       f"({_join(present)}); its per-seed accuracy intervals span {span}, so it can neither confirm "
                       "nor rule out generalisation" + (" to the other classes." if len(present) < len(e["rows"])
                                                         else "."))
    out.extend(validity or [])
    out.append(_leakage_sentence(leakage))
    out.append("All images come from one analyser and one laboratory (CellaVision DM96, Hospital Clínic de "
               "Barcelona, May Grünwald-Giemsa): BatchNorm ResNets are known to lose accuracy under stain and "
               "scanner shift, which no set here tests.")
    return out


def model_card(config: dict, weights: dict, recipe: dict, data: dict, table: pd.DataFrame, leakage: list[dict],
               runs: list[RunKey], validity: list[str] | None = None) -> dict:
    """The computed parts of the model card; the template adds the fixed text."""
    phases = "; ".join(f"phase {p['phase']} {p['backbone']}, lr {p['lr']}, up to {p['max_epochs']} epochs, "
                       f"patience {p['patience']}" for p in recipe["phases"])
    external = [f"{e['name']}: {e['total']} image(s), classes {_join([r['label'] for r in e['rows'] if r['count']])}"
                for e in data.get("external", [])]
    test_n = sum(r["test"] for r in data["split_rows"] if not r["is_total"])
    return {
        "init": weights.get("init"),
        "training": f"{recipe['size']} px, batch size {recipe['batch_size']}; {phases}; early stopping on validation "
                    "loss with the best weights restored",
        "seeds": ", ".join(r.label for r in runs),
        "n_images": data["n_images"],
        "split": "split {} by class with split seed(s) {}".format(
            "/".join(f"{100 * float(f):g}" for f in config.get("split_fractions", [0.7, 0.15, 0.15])),
            ", ".join(str(s) for s in dict.fromkeys(r.split_seed for r in runs))),
        "test_n": test_n,
        "external": external,
        "metrics": metric_rows(table),
        "limitations": limitations(config, weights, data, table, leakage, runs, validity),
    }
