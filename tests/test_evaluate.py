"""Predictions of an exported learner: probabilities, predicted class and loss agree with each other."""

from __future__ import annotations

import numpy as np
import pytest

from leukoreport.errors import LeukoError
from leukoreport.evaluate import load_model, predict
from leukoreport.train import PhaseConfig, TrainConfig, export_learner, train


@pytest.fixture(scope="module")
def model_path(tiny_split, tmp_path_factory):
    cfg = TrainConfig(size=32, batch_size=8, pretrained=False, device="cpu",
                      phases=[PhaseConfig(True, 1e-2, 1, 1), PhaseConfig(False, 1e-3, 1, 1)])
    learn, _, _ = train(tiny_split, cfg, seed=3, threads=1)
    out = tmp_path_factory.mktemp("model") / "model.pkl"
    export_learner(learn, out)
    return out


def test_predictions_consistent(model_path, tiny_split):
    learn = load_model(model_path)
    test = tiny_split[tiny_split["split"] == "test"]
    pred = predict(learn, test, batch_size=4)
    probs = pred[["prob_alpha", "prob_beta", "prob_gamma"]].to_numpy()
    assert list(pred["path"]) == list(test["path"])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert list(pred["prediction"]) == [["alpha", "beta", "gamma"][i] for i in probs.argmax(axis=1)]
    true_p = [row[f"prob_{row['label']}"] for _, row in pred.iterrows()]
    np.testing.assert_allclose(pred["loss"], -np.log(true_p), rtol=1e-9)
    # the same images through fastai's own predict give the same probabilities
    _, _, p0 = learn.predict(test["path"].iloc[0])
    np.testing.assert_allclose(p0.numpy(), probs[0], atol=1e-5)


def test_unknown_label_and_missing_model(model_path, tiny_split, tmp_path):
    learn = load_model(model_path)
    bad = tiny_split.head(2).assign(label="delta")
    with pytest.raises(LeukoError, match="delta"):
        predict(learn, bad)
    with pytest.raises(LeukoError, match="nothing.pkl: model file not found"):
        load_model(tmp_path / "nothing.pkl")
