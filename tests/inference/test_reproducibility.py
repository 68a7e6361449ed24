"""Training twice with one seed gives the same predictions and weights bit for bit; another seed does not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leukoreport.base.errors import LeukoError
from leukoreport.inference.evaluate import predict
from leukoreport.inference.model_files import load_model_file
from leukoreport.inference.reproducibility import compare_predictions, compare_weights, reproducibility_record
from tests.conftest import tiny_train_config


@pytest.fixture(scope="module")
def three_runs(tiny_split, tmp_path_factory, exported_model):
    """Seed 3 trained twice and seed 4 once, each exported and its test split predicted to predictions.csv."""
    cfg = tiny_train_config(deterministic=True)
    test = tiny_split[tiny_split["split"] == "test"]
    out = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        folder = tmp_path_factory.mktemp(name)
        model = exported_model(tiny_split, cfg, folder, seed=seed)
        predict(load_model_file(model), test, batch_size=4).to_csv(folder / "predictions.csv", index=False)
        out[name] = (model, folder / "predictions.csv")
    return out


def _state(path):
    return load_model_file(path).model.state_dict()


def test_same_seed_is_identical(three_runs):
    (model_a, pred_a), (model_b, pred_b) = three_runs["a"], three_runs["b"]
    record = reproducibility_record(42, 3, model_a, pred_a, model_b, pred_b)
    state = _state(model_a)
    assert record == {"split_seed": 42, "seed": 3, "identical_predictions": True, "max_probability_difference": 0.0,
                      "identical_weights": True, "n_tensors": len(state), "n_tensors_different": 0,
                      "max_weight_difference": 0.0, "predictions": pred_b.as_posix(), "model": model_b.as_posix()}


def test_another_seed_differs_and_the_numbers_equal_a_direct_computation(three_runs):
    (model_a, pred_a), (model_c, pred_c) = three_runs["a"], three_runs["c"]
    record = reproducibility_record(42, 3, model_a, pred_a, model_c, pred_c)
    assert record["identical_predictions"] is False and record["identical_weights"] is False
    a, c = pd.read_csv(pred_a).sort_values("path"), pd.read_csv(pred_c).sort_values("path")
    probs = [col for col in a.columns if col.startswith("prob_")]
    assert record["max_probability_difference"] == np.abs(a[probs].to_numpy() - c[probs].to_numpy()).max() > 0
    sa, sc = _state(model_a), _state(model_c)
    diffs = {k: np.abs(sa[k].double().numpy() - sc[k].double().numpy()).max() for k in sa if sa[k].numel()}
    assert record["n_tensors_different"] == sum(d > 0 for d in diffs.values()) > 0
    assert record["max_weight_difference"] == pytest.approx(max(diffs.values()), rel=0, abs=0)


def test_predictions_in_another_row_order_are_still_identical(three_runs):
    pred = pd.read_csv(three_runs["a"][1])
    assert compare_predictions(pred, pred.iloc[::-1])["identical_predictions"] is True
    nudged = pred.copy()
    column = [c for c in pred.columns if c.startswith("prob_")][0]
    nudged.loc[0, column] = np.nextafter(nudged.loc[0, column], 2.0)
    result = compare_predictions(pred, nudged)
    assert result["identical_predictions"] is False and 0 < result["max_probability_difference"] < 1e-15


def test_mismatched_inputs_are_one_line_errors(three_runs):
    pred = pd.read_csv(three_runs["a"][1])
    with pytest.raises(LeukoError, match="different images or classes"):
        compare_predictions(pred, pred.iloc[1:])
    state = _state(three_runs["a"][0])
    fewer = dict(list(state.items())[1:])
    with pytest.raises(LeukoError, match="different parameters"):
        compare_weights(state, fewer)
