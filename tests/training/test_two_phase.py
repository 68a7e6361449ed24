"""Two-phase training on tiny synthetic data: history, restored best weights, determinism, export."""

from __future__ import annotations

import pytest

from leukoreport.training.two_phase import HISTORY_COLUMNS, PhaseConfig, TrainConfig, export_learner, train

CFG = TrainConfig.defaults(
    size=32,
    batch_size=8,
    pretrained=False,
    phases=[PhaseConfig(True, 1e-2, 3, 1), PhaseConfig(False, 1e-3, 3, 2)],
    device="cpu",
    num_workers=0,
    precision="fp32",
    channels_last=False,
)


@pytest.fixture(scope="module")
def trained(tiny_split):
    return train(tiny_split, CFG, seed=7, threads=1)


def test_history_columns_and_epoch_axis(trained):
    _, history, info = trained
    assert list(history.columns) == HISTORY_COLUMNS
    assert list(history["epoch"]) == list(range(1, len(history) + 1))
    for phase in info["phases"]:
        rows = history[history["phase"] == phase["phase"]]
        assert len(rows) == phase["epochs_run"] <= phase["max_epochs"]
        assert list(rows["phase_epoch"]) == list(range(1, len(rows) + 1))
        # the best epoch is the argmin of valid_loss within the phase, on the global axis
        best = rows.loc[rows["valid_loss"].idxmin()]
        assert phase["best_epoch"] == best["epoch"]
        assert phase["best_valid_loss"] == pytest.approx(best["valid_loss"])
        assert phase["stopped_early"] == (len(rows) < phase["max_epochs"])
    assert info["n_train"] == 18 and info["n_valid"] == 6
    # train accuracy counts argmax hits over the epoch's training batches: 2 full batches of 8 (drop_last)
    seen = (info["n_train"] // CFG.batch_size) * CFG.batch_size
    hits = history["train_accuracy"] * seen
    assert ((hits - hits.round()).abs() < 1e-6).all() and hits.between(0, seen).all()
    assert info["classes"] == ["alpha", "beta", "gamma"]


def test_best_weights_restored(trained, tiny_split):
    """After training, the model's validation loss is the best of the last phase (weights restored)."""
    learn, history, info = trained
    valid_loss = learn.validate()[0]
    assert valid_loss == pytest.approx(info["phases"][-1]["best_valid_loss"], rel=1e-4)


def test_same_seed_same_history(trained, tiny_split):
    _, again, _ = train(tiny_split, CFG, seed=7, threads=1)
    _, history, _ = trained
    cols = ["train_loss", "valid_loss", "accuracy", "train_accuracy"]
    assert history[cols].equals(again[cols])


def test_export_loads_without_leukoreport(trained, tiny_split, tmp_path, predict_without_leukoreport):
    learn, _, _ = trained
    out = tmp_path / "model.pkl"
    export_learner(learn, out)
    assert out.is_file() and not list(tmp_path.glob(".model-*"))
    image = tiny_split["path"].iloc[0]
    pred, total, _ = predict_without_leukoreport(out, image, tmp_path)
    assert pred in {"alpha", "beta", "gamma"}
    assert total == pytest.approx(1.0, abs=1e-5)


def test_same_seed_same_history_with_workers(tiny_split):
    """The default config loads data in worker processes; the seed must still fix every number."""
    from dataclasses import replace

    cfg = replace(CFG, num_workers=2)
    cols = ["train_loss", "valid_loss", "accuracy"]
    first = train(tiny_split, cfg, seed=11, threads=1)[1]
    second = train(tiny_split, cfg, seed=11, threads=1)[1]
    other = train(tiny_split, cfg, seed=12, threads=1)[1]
    assert first[cols].equals(second[cols])
    assert not first[cols].equals(other[cols])
