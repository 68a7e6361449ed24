"""Predictions of an exported learner: probabilities, predicted class and loss agree with each other."""

from __future__ import annotations

import numpy as np
import pytest

from leukoreport.base.errors import LeukoError
from leukoreport.inference.evaluate import predict
from leukoreport.inference.model_files import load_model_file
from tests.conftest import tiny_train_config


@pytest.fixture(scope="module")
def model_path(tiny_split, tmp_path_factory, exported_model):
    cfg = tiny_train_config()
    return exported_model(tiny_split, cfg, tmp_path_factory.mktemp("model"))


def test_predictions_consistent(model_path, tiny_split):
    learn = load_model_file(model_path)
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
    learn = load_model_file(model_path)
    bad = tiny_split.head(2).assign(label="delta")
    with pytest.raises(LeukoError, match="delta"):
        predict(learn, bad)
    with pytest.raises(LeukoError, match="nothing.pkl: model file not found"):
        load_model_file(tmp_path / "nothing.pkl")


def test_features_come_from_the_same_single_forward_pass(model_path, tiny_split, tmp_path):
    import torch

    from leukoreport.data.embeddings import load_embeddings, save_embeddings
    from leukoreport.inference.evaluate import predict_with_features

    learn = load_model_file(model_path)
    test = tiny_split[tiny_split["split"] == "test"]
    calls = []
    handle = learn.model.register_forward_hook(lambda *a: calls.append(1))
    try:
        pred, emb = predict_with_features(learn, test, batch_size=4)
    finally:
        handle.remove()
    assert len(calls) == -(-len(test) // 4)  # one model forward per batch: predictions and features together
    assert emb.features.shape == (len(test), 512) and emb.paths == list(pred["path"])
    # independent: the body's output averaged over space, for the same preprocessed batch
    x, = learn.dls.test_dl(list(test["path"]), bs=len(test)).one_batch()[:1]
    with torch.no_grad():
        learn.model.eval()
        direct = learn.model[0](x).mean(dim=(2, 3)).numpy()
        logits = learn.model[1](learn.model[0](x))
    np.testing.assert_allclose(emb.features, direct, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(pred[["prob_alpha", "prob_beta", "prob_gamma"]].to_numpy(),
                               torch.softmax(logits, 1).numpy(), atol=1e-5)
    save_embeddings(emb, tmp_path / "e.npz")
    back = load_embeddings(tmp_path / "e.npz")
    assert back.paths == emb.paths and back.labels == list(test["label"])
    np.testing.assert_array_equal(back.features, emb.features)


def test_train_sample_is_bounded_stratified_and_seeded(tiny_split, tmp_path):
    from leukoreport.data.embeddings import load_embeddings, train_sample

    rows = tiny_split[tiny_split["split"] == "train"]
    assert train_sample(tiny_split, None, 0)["path"].tolist() == rows["path"].tolist()
    got = train_sample(tiny_split, 9, 0)
    assert len(got) == 9 and set(got["split"]) == {"train"}
    assert got["label"].value_counts().to_dict() == {"alpha": 3, "beta": 3, "gamma": 3}
    assert got.equals(train_sample(tiny_split, 9, 0)) and not got.equals(train_sample(tiny_split, 9, 1))
    (tmp_path / "bad.npz").write_text("no")
    with pytest.raises(LeukoError, match="bad.npz: not an embeddings file"):
        load_embeddings(tmp_path / "bad.npz")


def test_tta_predictions_are_fastai_tta_seeded_with_the_run_seed(model_path, tiny_split):
    from fastai.torch_core import set_seed

    from leukoreport.inference.evaluate import predict_with_features

    learn = load_model_file(model_path)
    test = tiny_split[tiny_split["split"] == "test"]
    cols = ["prob_alpha", "prob_beta", "prob_gamma"]
    plain, plain_emb = predict_with_features(learn, test, batch_size=4)
    tta, tta_emb = predict_with_features(learn, test, batch_size=4, tta=True, seed=5)
    # independent: fastai's own TTA on a fresh test DataLoader, seeded the same way
    dl = learn.dls.test_dl(list(test["path"]), bs=4)
    set_seed(5, reproducible=True)
    with learn.no_bar():
        expected, _ = learn.tta(dl=dl)
    np.testing.assert_allclose(tta[cols].to_numpy(), expected.numpy(), atol=1e-6)
    assert np.abs(tta[cols].to_numpy() - plain[cols].to_numpy()).max() > 1e-4
    assert list(tta["prediction"]) == [["alpha", "beta", "gamma"][i] for i in tta[cols].to_numpy().argmax(axis=1)]
    true_p = [row[f"prob_{row['label']}"] for _, row in tta.iterrows()]
    np.testing.assert_allclose(tta["loss"], -np.log(true_p), rtol=1e-9)
    np.testing.assert_array_equal(tta_emb.features, plain_emb.features)  # embeddings: the plain forward pass
    again = predict_with_features(learn, test, batch_size=4, tta=True, seed=5)[0]
    other = predict_with_features(learn, test, batch_size=4, tta=True, seed=6)[0]
    assert again[cols].equals(tta[cols]) and not other[cols].equals(tta[cols])


def _old_inference(learn, test, batch_size: int, num_workers: int):
    """The inference path before the fast one: fastai's ``get_preds`` on the contiguous model, the hook on."""
    from pathlib import Path

    from leukoreport.inference.features import pooled_features

    dl = learn.dls.test_dl([Path(p) for p in test["path"]], bs=batch_size, num_workers=num_workers)
    with learn.no_bar(), pooled_features(learn.model) as batches:
        probs, _ = learn.get_preds(dl=dl)
    return probs.numpy(), np.concatenate(batches)


@pytest.mark.parametrize("batch_size, num_workers", [(64, 2), (4, 1)])
def test_fast_inference_changes_no_prediction(model_path, tiny_split, batch_size, num_workers):
    """One batch without workers and the channels-last model: the same predictions as the old path
    (probabilities within 1e-6, the same argmax), and the model is contiguous again afterwards."""
    import torch

    from leukoreport.inference.evaluate import predict_with_features

    learn = load_model_file(model_path)
    test = tiny_split[tiny_split["split"] != "train"]  # 12 images: one batch of 64, or three of 4
    old_probs, old_features = _old_inference(learn, test, batch_size, num_workers)
    stem = learn.model[0][0].weight
    layouts = []
    handle = learn.model.register_forward_pre_hook(
        lambda *a: layouts.append(stem.is_contiguous(memory_format=torch.channels_last)))
    try:
        pred, emb = predict_with_features(learn, test, batch_size, num_workers)
    finally:
        handle.remove()
    assert layouts and all(layouts)  # the fast path did run
    probs = pred[["prob_alpha", "prob_beta", "prob_gamma"]].to_numpy()
    np.testing.assert_allclose(probs, old_probs, rtol=0, atol=1e-6)
    assert (probs.argmax(axis=1) == old_probs.argmax(axis=1)).all()
    np.testing.assert_allclose(emb.features, old_features, rtol=1e-5, atol=1e-6)
    assert all(p.is_contiguous() for p in learn.model.parameters())


def test_inference_workers_only_where_they_can_overlap():
    from leukoreport.inference.evaluate import inference_workers

    assert inference_workers(40, 64, 2) == 0 and inference_workers(64, 64, 8) == 0
    assert inference_workers(65, 64, 2) == 2 and inference_workers(375, 64, 0) == 0


def test_fast_inference_restores_the_model_after_an_error():
    import torch

    from leukoreport.inference.evaluate import fast_inference

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3))
    with pytest.raises(RuntimeError, match="boom"), fast_inference(model):
        assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
        raise RuntimeError("boom")
    assert model[0].weight.is_contiguous()
