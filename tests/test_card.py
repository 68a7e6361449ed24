"""Model card rows and limitation sentences, computed from a results table."""

from __future__ import annotations

import statistics

import pandas as pd

from leukoreport.card import limitations, metric_rows, model_card
from leukoreport.summary import metrics_table, run_keys
from test_summary import _metrics

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


def table() -> pd.DataFrame:
    return metrics_table([_metrics(1, "test", 18, 20), _metrics(1, "ext", 7, 9),
                          _metrics(2, "test", 20, 20), _metrics(2, "ext", 9, 9)])


def test_metric_rows_mean_sd_range_and_interval_span():
    rows = {r["dataset"]: r for r in metric_rows(table())}
    test = rows["test"]
    accs = [18 / 20, 20 / 20]
    assert test["accuracy"] == f"{100 * statistics.mean(accs):.2f}% ± {100 * statistics.stdev(accs):.2f}"
    assert test["range"] == "90.0%–100.0%" and test["seeds"] == 2 and test["n"] == 20
    t = table()
    low = t.loc[t["dataset"] == "ext", "accuracy_low"].min()
    assert rows["ext"]["interval_span"] == f"{100 * low:.1f}%–100.0%"


def test_limitations_follow_the_run():
    text = limitations({}, WEIGHTS_RANDOM, DATA, table(), NO_LEAKS, run_keys([42], [1, 2]))
    joined = " ".join(text)
    assert "not with ImageNet weights" in joined
    assert "2 training seed(s) on one split (split seed 42)" in joined
    assert "External set 'ext' has 9 image(s) of 1 class(es) (a)" in joined
    assert "no exact or near duplicates" in joined and "109 images" in joined
    assert "BatchNorm" in joined
    leaks = [{**NO_LEAKS[0], "n_pairs": 3, "n_exact": 1, "n_near": 2}]
    joined = " ".join(limitations({"max_per_class": 20}, WEIGHTS_IMAGENET, DATA, table(), leaks, run_keys([42], [1])))
    assert "not with ImageNet weights" not in joined
    assert "found 3 duplicate pair(s) (1 exact, 2 near)" in joined
    assert "subsampled to 20 images per class" in joined
    grid = " ".join(limitations({}, WEIGHTS_IMAGENET, DATA, table(), leaks + leaks, run_keys([1, 2], [5, 6, 7])))
    assert "3 training seed(s) on each of 2 splits (split seeds 1, 2)" in grid
    assert "found 6 duplicate pair(s) over 2 split seeds" in grid


def test_model_card_fields():
    card = model_card({"split_fractions": [0.7, 0.15, 0.15]}, WEIGHTS_IMAGENET, RECIPE, DATA,
                      table(), NO_LEAKS, run_keys([7], [1, 2]))
    assert card["split"] == "split 70/15/15 by class with split seed(s) 7"
    assert card["test_n"] == 20 and card["seeds"] == "seed 1, seed 2"
    assert card["external"] == ["ext: 9 image(s), classes a"]
    assert "phase 1 frozen, lr 0.001, up to 20 epochs, patience 3" in card["training"]
