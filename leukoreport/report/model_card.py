"""Model card (Mitchell et al. 2019) and limitations, computed from the run's result tables."""

from __future__ import annotations

import pandas as pd

from leukoreport.config.provenance import declared_provenance, provenance_sentences
from leukoreport.report.number_format import estimate, mean_sd, pct1
from leukoreport.stats.run_tables import RunKey

__all__ = ["WIDE_INTERVAL", "leakage_sentences", "limitations", "metric_rows", "model_card"]

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


def _scope_totals(audits: list[dict]) -> dict[str, int]:
    """Pairs per scope summed over the audits (report contexts carry ``scopes`` rows, leakage.json ``by_scope``)."""
    totals: dict[str, int] = {}
    for a in audits:
        rows = a.get("scopes") or [{"scope": k, **v} for k, v in a.get("by_scope", {}).items()]
        for r in rows:
            totals[r["scope"]] = totals.get(r["scope"], 0) + int(r.get("exact", 0)) + int(r.get("near", 0))
    return totals


def _set_name(group: str) -> str:
    return group.split(":", 1)[1] if group.startswith("external:") else group


def _distinct_sentence(group: str, counts: dict, seed_note: str) -> str:
    """What pairs inside one group mean: fewer distinct images than n (or, in training, over-weighted images)."""
    k, n, d = counts["pairs_within"], counts["n"], counts["distinct"]
    if group == "train":
        return (f"The training split{seed_note} holds {k} duplicate pair(s) within itself ({d} distinct of {n} "
                "images): those images weigh more in training; this does not make test results optimistic.")
    what = f"External set '{_set_name(group)}'" if group.startswith("external:") else f"The {group} split{seed_note}"
    effect = ("early stopping judges fewer distinct images than it seems" if group == "valid"
              else "its effective size is smaller than n and its intervals are too narrow")
    return f"{what} holds {k} duplicate pair(s) within itself: only {d} of its {n} images are distinct, so {effect}."


def leakage_sentences(audits: list[dict]) -> list[str]:
    """What the leakage audit found, by where the pairs are: across splits or between training and external
    images (optimistic results), within one set (smaller effective size, with its distinct count)."""
    pairs = sum(a["n_pairs"] for a in audits)
    if not pairs:
        a = audits[0]
        return [f"The leakage audit found no exact or near duplicates (perceptual hash, Hamming distance ≤ "
                f"{a['max_distance']}) among {a['n_images']} images; it cannot detect different images of the same "
                "patient or slide."]
    exact, near = sum(a["n_exact"] for a in audits), sum(a["n_near"] for a in audits)
    where = "" if len(audits) == 1 else f" over {len(audits)} split seeds"
    out = [f"The leakage audit found {pairs} duplicate pair(s){where} ({exact} exact, {near} near)."]
    totals = _scope_totals(audits)
    if totals.get("across splits"):
        out.append(f"{totals['across splits']} pair(s) join different splits (train, valid, test): test and "
                   "validation results may be optimistic, because the model may have trained on a copy of an image "
                   "it is scored on.")
    with_training = sorted({_set_name(g) for a in audits for g, c in a.get("groups", {}).items()
                            if g.startswith("external:") and c.get("pairs_with_training")})
    if totals.get("training vs external"):
        sets = f" ({', '.join(repr(s) for s in with_training)})" if with_training else ""
        out.append(f"{totals['training vs external']} pair(s) join training data and external set(s){sets}: "
                   "results on those sets may be optimistic.")
    seen_external: set[str] = set()
    for a in audits:
        seed_note = f" of split seed {a['split_seed']}" if len(audits) > 1 and "split_seed" in a else ""
        for group, counts in a.get("groups", {}).items():
            if not counts.get("pairs_within") or group in seen_external:
                continue
            if group.startswith("external:"):
                seen_external.add(group)  # the same in every split seed's audit
            out.append(_distinct_sentence(group, counts, seed_note))
    if totals.get("within external") and not seen_external:
        out.append(f"{totals['within external']} pair(s) lie within external sets: those sets hold fewer distinct "
                   "images than their n, so their intervals are too narrow.")
    if totals.get("across external sets"):
        out.append(f"{totals['across external sets']} pair(s) join different external sets: their results are not "
                   "independent of each other.")
    return out


def limitations(config: dict, weights: dict, data: dict, table: pd.DataFrame, leakage: list[dict],
                runs: list[RunKey], validity: dict[str, str] | None = None,
                leakage_in_section: bool = False) -> list[str]:
    """Plain sentences on what this run cannot show, each computed from the run's files: one per external set
    (interval width and ``validity``, set name → sentence); with ``leakage_in_section`` only the leakage count,
    since a section beside them gives where the pairs lie."""
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
    validity = dict(validity or {})
    for e in data.get("external", []):
        parts = [s for s in (_width_sentence(e, table[table["dataset"] == e["name"]]), validity.pop(e["name"], None))
                 if s]
        if parts:
            out.append(" ".join(parts))
    out.extend(validity.values())
    leaks = leakage_sentences(leakage)
    if leakage_in_section and leakage and any(a["n_pairs"] for a in leakage):
        leaks = [f"{leaks[0][:-1]}: the leakage audit section says where they lie and what follows."]
    out.extend(leaks)
    out.extend(provenance_sentences(declared_provenance(config)))
    return out


def _width_sentence(e: dict, rows: pd.DataFrame) -> str | None:
    """'External set X has n image(s) ...' when its accuracy intervals are too wide or classes are missing."""
    present = [r["label"] for r in e["rows"] if r["count"] > 0]
    if rows.empty:
        return None
    width = float((rows["accuracy_high"] - rows["accuracy_low"]).max())
    if width <= WIDE_INTERVAL and len(present) == len(e["rows"]):
        return None
    span = f"{pct1(rows['accuracy_low'].min())}–{pct1(rows['accuracy_high'].max())}"
    return (f"External set '{e['name']}' has {e['total']} image(s) of {len(present)} class(es) "
            f"({_join(present)}); its per-seed accuracy intervals span {span}, so it can neither confirm "
            "nor rule out generalisation" + (" to the other classes." if len(present) < len(e["rows"]) else "."))


def _external_line(e: dict, config: dict) -> str:
    """'NAME: n image(s), classes ...; other source (facts)' for the model card."""
    line = f"{e['name']}: {e['total']} image(s), classes {_join([r['label'] for r in e['rows'] if r['count']])}"
    provenance = declared_provenance(config)
    declared = provenance.external.get(e["name"])
    if declared is None:
        return f"{line}; provenance not declared"
    facts = f" ({declared.facts()})" if declared.declared() else ""
    return f"{line}; {provenance.relation(e['name'])}{facts}"


def model_card(config: dict, weights: dict, recipe: dict, data: dict, table: pd.DataFrame, leakage: list[dict],
               runs: list[RunKey], validity: dict[str, str] | None = None) -> dict:
    """The computed parts of the model card; the template adds the fixed text."""
    phases = "; ".join(f"phase {p['phase']} {p['backbone']}, lr {p['lr']}, up to {p['max_epochs']} epochs, "
                       f"patience {p['patience']}" for p in recipe["phases"])
    external = [_external_line(e, config) for e in data.get("external", [])]
    test_n = sum(r["test"] for r in data["split_rows"] if not r["is_total"])
    return {
        "init": weights.get("init"),
        "training": f"{recipe['size']} px, batch size {recipe['batch_size']}; {phases}; early stopping on validation "
                    "loss with the best weights restored",
        "seeds": ", ".join(r.label for r in runs),
        "n_images": data["n_images"],
        "split": "split {} by class with split seed(s) {}".format(
            "/".join(f"{100 * float(f):g}" for f in config["split_fractions"]),
            ", ".join(str(s) for s in dict.fromkeys(r.split_seed for r in runs))),
        "test_n": test_n,
        "external": external,
        "metrics": metric_rows(table),
        "limitations": limitations(config, weights, data, table, leakage, runs, validity),
    }
