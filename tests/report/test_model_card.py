"""Model card rows and limitation sentences, computed from a results table."""

from __future__ import annotations

import statistics

import pandas as pd
import pytest

from leukoreport.report.model_card import leakage_sentences, limitations, metric_rows, model_card
from leukoreport.stats.run_tables import metrics_table, run_keys

WEIGHTS_RANDOM = {"pretrained": "no", "init": "random (pretrained: false)"}
WEIGHTS_IMAGENET = {"pretrained": "yes", "init": "ImageNet (torchvision IMAGENET1K_V1)"}
DATA = {"n_images": 100, "citation": "PBC",
        "split_rows": [{"label": "a", "train": 14, "valid": 3, "test": 20, "total": 37, "is_total": False},
                       {"label": "total", "train": 14, "valid": 3, "test": 20, "total": 37, "is_total": True}],
        "external": [{"name": "ext", "total": 9, "rows": [{"label": "a", "count": 9}, {"label": "b", "count": 0},
                                                           {"label": "c", "count": 0}]}]}
NO_LEAKS = [{"n_pairs": 0, "n_exact": 0, "n_near": 0, "max_distance": 4, "n_images": 109}]
RECIPE = {"size": 224, "batch_size": 32, "phases": [
    {"phase": 1, "backbone": "frozen", "lr": "0.001", "max_epochs": 20, "patience": 3},
    {"phase": 2, "backbone": "unfrozen", "lr": "0.0001", "max_epochs": 20, "patience": 5}]}


@pytest.fixture
def table(fake_metrics) -> pd.DataFrame:
    """metrics.csv rows of two seeds on the test set and one external set."""
    return metrics_table([fake_metrics(1, "test", 18, 20), fake_metrics(1, "ext", 7, 9),
                          fake_metrics(2, "test", 20, 20), fake_metrics(2, "ext", 9, 9)])


def test_metric_rows_mean_sd_range_and_interval_span(table):
    rows = {r["dataset"]: r for r in metric_rows(table)}
    test = rows["test"]
    accs = [18 / 20, 20 / 20]
    assert test["accuracy"] == f"{100 * statistics.mean(accs):.2f}% ± {100 * statistics.stdev(accs):.2f}"
    assert test["range"] == "90.0%–100.0%" and test["seeds"] == 2 and test["n"] == 20
    t = table
    low = t.loc[t["dataset"] == "ext", "accuracy_low"].min()
    assert rows["ext"]["interval_span"] == f"{100 * low:.1f}%–100.0%"


def test_limitations_follow_the_run(table):
    text = limitations({}, WEIGHTS_RANDOM, DATA, table, NO_LEAKS, run_keys([42], [1, 2]))
    joined = " ".join(text)
    assert "not with ImageNet weights" in joined
    assert "2 training seed(s) on one split (split seed 42)" in joined
    assert "External set 'ext' has 9 image(s) of 1 class(es) (a)" in joined
    assert "no exact or near duplicates" in joined and "109 images" in joined
    assert "The training images' source is not given in the config (data_provenance)" in joined
    assert "one laboratory" not in joined and "CellaVision" not in joined
    leaks = [{**NO_LEAKS[0], "n_pairs": 3, "n_exact": 1, "n_near": 2}]
    joined = " ".join(limitations({"max_per_class": 20}, WEIGHTS_IMAGENET, DATA, table, leaks, run_keys([42], [1])))
    assert "not with ImageNet weights" not in joined
    assert "found 3 duplicate pair(s) (1 exact, 2 near)" in joined
    assert "subsampled to 20 images per class" in joined
    grid = " ".join(limitations({}, WEIGHTS_IMAGENET, DATA, table, leaks + leaks, run_keys([1, 2], [5, 6, 7])))
    assert "3 training seed(s) on each of 2 splits (split seeds 1, 2)" in grid
    assert "found 6 duplicate pair(s) over 2 split seeds" in grid


def test_model_card_fields(table):
    card = model_card({"split_fractions": [0.7, 0.15, 0.15]}, WEIGHTS_IMAGENET, RECIPE, DATA,
                      table, NO_LEAKS, run_keys([7], [1, 2]))
    assert card["split"] == "split 70/15/15 by class with split seed(s) 7"
    assert card["test_n"] == 20 and card["seeds"] == "seed 1, seed 2"
    assert card["external"] == ["ext: 9 image(s), classes a; provenance not declared"]
    assert "phase 1 frozen, lr 0.001, up to 20 epochs, patience 3" in card["training"]


def _audit(scopes: dict[str, int], groups: dict[str, dict]) -> dict:
    n = sum(scopes.values())
    return {**NO_LEAKS[0], "n_pairs": n, "n_exact": 0, "n_near": n, "split_seed": 42,
            "scopes": [{"scope": k, "exact": 0, "near": v} for k, v in scopes.items()], "groups": groups}


def test_leakage_sentences_say_where_pairs_are_and_what_follows():
    """Within one external set: a smaller effective size with its distinct count, not 'optimistic'; across splits
    and training vs external: optimistic results."""
    within = _audit({"within external": 112}, {
        "train": {"n": 1750, "distinct": 1750, "pairs_within": 0, "pairs_with_training": 0},
        "external:aug": {"n": 500, "distinct": 388, "pairs_within": 112, "pairs_with_training": 0}})
    text = leakage_sentences([within])
    assert text[0] == "The leakage audit found 112 duplicate pair(s) (0 exact, 112 near)."
    assert ("External set 'aug' holds 112 duplicate pair(s) within itself: only 388 of its 500 images are distinct, "
            "so its effective size is smaller than n and its intervals are too narrow.") in text
    assert not any("optimistic" in s for s in text)
    across = _audit({"across splits": 2, "training vs external": 3}, {
        "test": {"n": 375, "distinct": 375, "pairs_within": 0, "pairs_with_training": 2},
        "external:lab2": {"n": 9, "distinct": 9, "pairs_within": 0, "pairs_with_training": 3}})
    joined = " ".join(leakage_sentences([across]))
    assert "2 pair(s) join different splits" in joined and "test and validation results may be optimistic" in joined
    assert ("3 pair(s) join training data and external set(s) ('lab2'): results on those sets may be optimistic"
            in joined)
    assert "distinct" not in joined


def test_distinct_counts_from_the_audit(tmp_path):
    """group_counts: a chain of three copies within one set counts once; a pair across groups changes no count."""
    from leukoreport.data.leakage import group_counts

    table = pd.DataFrame({"path": ["a", "b", "c", "d", "t"], "group": ["external:x"] * 4 + ["train"]})
    pairs = pd.DataFrame({"path_a": ["a", "b", "t"], "group_a": ["external:x", "external:x", "train"],
                          "path_b": ["b", "c", "d"], "group_b": ["external:x", "external:x", "external:x"]})
    counts = group_counts(table, pairs)
    assert counts["external:x"] == {"n": 4, "distinct": 2, "pairs_within": 2, "pairs_with_training": 1}
    assert counts["train"] == {"n": 1, "distinct": 1, "pairs_within": 0, "pairs_with_training": 0}


PBC = {"source": "PBC dataset", "scanner": "CellaVision DM96", "stain": "MGG"}


def test_provenance_sentences_follow_the_config():
    """A set declared from another source is named as tested; the one-laboratory claim appears only when no set
    is declared from another source, and undeclared sets are said to be unknown."""
    from leukoreport.config.provenance import declared_provenance, provenance_sentences

    other = {"data_provenance": PBC, "external": {
        "raabin": {"path": "x", "source": "Raabin-WBC", "scanner": "Olympus CX18 + phone camera", "stain": "Giemsa"},
        "same": {"path": "y", "source": " pbc DATASET "}, "plain": "z"}}
    joined = " ".join(provenance_sentences(declared_provenance(other)))
    assert "The training images come from PBC dataset, CellaVision DM96, MGG (config data_provenance)" in joined
    assert "External set(s) from other sources: 'raabin' (Raabin-WBC, Olympus CX18 + phone camera, Giemsa)" in joined
    assert "No external set is declared" not in joined
    assert "External set(s) 'same' come from the training source" in joined
    assert "External set(s) 'plain' declare no provenance" in joined
    alone = " ".join(provenance_sentences(declared_provenance({"data_provenance": PBC, "external": {"plain": "z"}})))
    assert "No external set is declared to come from another source, so stain and scanner shift are not tested" in alone
    nothing = provenance_sentences(declared_provenance({"external": {}}))
    assert nothing == ["The training images' source is not given in the config (data_provenance); no external set "
                       "is given, so shift to another laboratory, scanner or stain is not tested."]


def test_model_card_states_each_sets_relation(table):
    cfg = {"split_fractions": [0.7, 0.15, 0.15], "data_provenance": PBC,
           "external": {"ext": {"path": "x", "source": "Lab 2", "stain": "Wright"}}}
    card = model_card(cfg, WEIGHTS_IMAGENET, RECIPE, DATA, table, NO_LEAKS, run_keys([7], [1]))
    assert card["external"] == ["ext: 9 image(s), classes a; other source (Lab 2, Wright)"]
    assert any("External set(s) from other sources: 'ext' (Lab 2, Wright)" in s for s in card["limitations"])


def test_one_limitation_per_external_set_and_leakage_left_to_its_section(table):
    """The interval sentence and the validity sentence of a set share one bullet; validity for a set without an
    interval sentence stays its own bullet; with leakage_in_section only the count remains."""
    validity = {"ext": "Set 'ext' is told apart from the training images with AUC 0.990.",
                "other": "Set 'other' (too few images for the domain classifier)."}
    leaks = [{**NO_LEAKS[0], "n_pairs": 3, "n_exact": 1, "n_near": 2,
              "by_scope": {"across splits": {"exact": 1, "near": 2}}}]
    text = limitations({}, WEIGHTS_IMAGENET, DATA, table, leaks, run_keys([42], [1, 2]), validity)
    ext = [t for t in text if "'ext'" in t]
    assert len(ext) == 1 and ext[0].startswith("External set 'ext' has 9 image(s)")
    assert ext[0].endswith(validity["ext"])
    assert validity["other"] in text
    full = leakage_sentences(leaks)
    assert len(full) > 1 and all(s in text for s in full)
    short = limitations({}, WEIGHTS_IMAGENET, DATA, table, leaks, run_keys([42], [1, 2]), validity,
                        leakage_in_section=True)
    assert not any(s in short for s in full[1:])
    assert "The leakage audit found 3 duplicate pair(s) (1 exact, 2 near): the leakage audit section says" in \
        " ".join(short)
    assert len(short) == len(text) - (len(full) - 1)
