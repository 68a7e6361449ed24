"""Per-epoch checkpoints: a training stopped after any epoch resumes there and ends with the uninterrupted weights."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from leukoreport.training.checkpoint import (
    TrainState,
    load_checkpoint,
    plain,
    restore_rng,
    rng_state,
    save_checkpoint,
    train_fingerprint,
)
from leukoreport.training.two_phase import PhaseConfig, TrainConfig, train

# patience 1 in phase 1 so that early stopping can end it; plain fit in one recipe, one-cycle in the other
CFG = TrainConfig.defaults(
    size=32, batch_size=8, pretrained=False, device="cpu", num_workers=0, precision="fp32", channels_last=True,
    phases=[PhaseConfig(True, 1e-2, 3, 2), PhaseConfig(False, 1e-3, 3, 2)],
)


class Killed(Exception):
    """Stands for the kill: raised from the progress line of a given epoch."""


def _stop_at(epoch: int, lines: list[str]):
    """A progress function that records lines and raises once the line of global epoch ``epoch`` has come."""

    def progress(line: str) -> None:
        lines.append(line)
        if line.startswith("phase") and sum(x.startswith("phase") for x in lines) == epoch:
            raise Killed(line)

    return progress


def _weights(learn) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in learn.model.state_dict().items()}


@pytest.fixture(scope="module")
def uninterrupted(tiny_split, tmp_path_factory):
    """The run nobody stopped (with checkpoints on, removed by nobody: the last one marks the end)."""
    path = tmp_path_factory.mktemp("whole") / "ckpt.pt"
    lines: list[str] = []
    learn, history, info = train(tiny_split, CFG, seed=5, threads=1, checkpoint=path, progress=lines.append)
    return _weights(learn), history, info, path, lines


def test_checkpointing_changes_nothing(tiny_split, uninterrupted):
    weights, history, _, path, lines = uninterrupted
    learn, plain_history, _ = train(tiny_split, CFG, seed=5, threads=1, progress=lambda _: None)
    assert all(torch.equal(weights[k], v) for k, v in _weights(learn).items())
    cols = ["epoch", "train_loss", "valid_loss", "accuracy"]
    assert history[cols].equals(plain_history[cols])
    assert not any(line.startswith("resuming") for line in lines)
    state, note = load_checkpoint(path, "another fingerprint")
    assert state is None and "another recipe" in note


@pytest.mark.parametrize("stop_epoch", [2, 3, 4, 5])  # inside phase 1, between the phases, inside phase 2
def test_resume_after_a_kill_gives_the_uninterrupted_weights(tiny_split, uninterrupted, tmp_path, stop_epoch):
    weights, history, info, _, _ = uninterrupted
    path = tmp_path / "ckpt.pt"
    lines: list[str] = []
    with pytest.raises(Killed):
        train(tiny_split, CFG, seed=5, threads=1, checkpoint=path, progress=_stop_at(stop_epoch, lines))
    # the line of epoch k comes before its checkpoint: the kill leaves the checkpoint of epoch k - 1
    state, _ = load_checkpoint(path, train_fingerprint(_recipe(), 5, tiny_split.to_dict("records"), ""))
    assert state is not None and state.epochs_done == stop_epoch - 1
    random.seed(123)  # another process: other random states, which the checkpoint must override
    torch.manual_seed(123)
    lines2: list[str] = []
    learn, history2, info2 = train(tiny_split, CFG, seed=5, threads=1, checkpoint=path, progress=lines2.append)
    assert lines2[0].startswith(f"resuming after epoch {stop_epoch - 1} (")
    epochs = [line for line in lines2 if line.startswith("phase")]
    assert len(epochs) == len(history) - (stop_epoch - 1)  # only the epochs after k ran again
    assert info2["resumed_after_epoch"] == stop_epoch - 1
    assert all(torch.equal(weights[k], v) for k, v in _weights(learn).items())
    cols = ["phase", "epoch", "phase_epoch", "train_loss", "valid_loss", "accuracy", "train_accuracy"]
    assert history2[cols].equals(history[cols])
    assert [(p["best_epoch"], p["epochs_run"]) for p in info2["phases"]] == \
        [(p["best_epoch"], p["epochs_run"]) for p in info["phases"]]


def test_resume_when_the_kill_came_after_a_phase_s_last_epoch_was_saved(tiny_split, uninterrupted, tmp_path,
                                                                       monkeypatch):
    from leukoreport.training import two_phase

    weights, history, info, _, _ = uninterrupted
    last = info["phases"][0]["epochs_run"]
    real_save = two_phase.save_checkpoint

    def save_then_die(path, state):
        real_save(path, state)
        if state.phase == 1 and state.phase_epochs == last:  # saved, but the phase's end was not
            raise Killed("saved the last epoch of phase 1")

    monkeypatch.setattr(two_phase, "save_checkpoint", save_then_die)
    path = tmp_path / "ckpt.pt"
    with pytest.raises(Killed):
        train(tiny_split, CFG, seed=5, threads=1, checkpoint=path, progress=lambda _: None)
    monkeypatch.setattr(two_phase, "save_checkpoint", real_save)
    lines: list[str] = []
    learn, history2, info2 = train(tiny_split, CFG, seed=5, threads=1, checkpoint=path, progress=lines.append)
    assert lines[0].startswith(f"resuming after epoch {last} (phase 1, epoch {last} of 3)")
    assert all(torch.equal(weights[k], v) for k, v in _weights(learn).items())
    assert info2["phases"][0]["best_epoch"] == info["phases"][0]["best_epoch"]
    assert history2["valid_loss"].tolist() == history["valid_loss"].tolist()


def _recipe() -> dict:
    from dataclasses import asdict

    return asdict(CFG)


def test_a_finished_checkpoint_only_exports(tiny_split, uninterrupted, tmp_path):
    weights, history, _, path, _ = uninterrupted
    copy = tmp_path / "ckpt.pt"
    copy.write_bytes(path.read_bytes())
    lines: list[str] = []
    learn, history2, _ = train(tiny_split, CFG, seed=5, threads=1, checkpoint=copy, progress=lines.append)
    assert lines[0].startswith(f"resuming after epoch {len(history)} (training finished; exporting)")
    assert not any(line.startswith("phase") for line in lines)
    assert all(torch.equal(weights[k], v) for k, v in _weights(learn).items())
    assert history2["valid_loss"].tolist() == history["valid_loss"].tolist()


def test_another_seed_ignores_the_checkpoint(tiny_split, uninterrupted, tmp_path):
    _, _, _, path, _ = uninterrupted
    copy = tmp_path / "ckpt.pt"
    copy.write_bytes(path.read_bytes())
    lines: list[str] = []
    train(tiny_split, CFG, seed=6, threads=1, checkpoint=copy, progress=lines.append)
    assert lines[0].startswith(f"ignoring {copy.as_posix()}: it belongs to another recipe, split or seed")


def test_a_truncated_checkpoint_is_ignored(tmp_path):
    path = tmp_path / "ckpt.pt"
    path.write_bytes(b"PK\x03\x04 not a whole file")
    state, note = load_checkpoint(path, "x")
    assert state is None and note.startswith(f"ignoring {path.as_posix()}: unreadable")


def test_loading_runs_no_pickled_code(tmp_path):
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (marker.write_text, ("code ran",))

    path = tmp_path / "ckpt.pt"
    torch.save({"fingerprint": Evil()}, path)
    state, note = load_checkpoint(path, "x")
    assert state is None and "unreadable" in note
    assert not marker.exists()


def test_rng_round_trip_through_a_file(tmp_path):
    import random as pyrandom

    class DL:
        rng = pyrandom.Random(9)

    dl = DL()
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    state = rng_state([dl])
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, TrainState("f", 1, 1, 1, {}, [], [], state))
    expected = (torch.rand(3), np.random.rand(3), random.random(), dl.rng.random())
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    dl.rng.seed(0)
    loaded, _ = load_checkpoint(path, "f")
    restore_rng(loaded.rng, [dl])
    got = (torch.rand(3), np.random.rand(3), random.random(), dl.rng.random())
    assert torch.equal(expected[0], got[0]) and np.array_equal(expected[1], got[1])
    assert expected[2:] == got[2:]


def test_plain_turns_numpy_and_tuples_into_loadable_values():
    out = plain({"a": np.float32(1.5), "b": (np.arange(3), [np.int64(2)])})
    assert out["a"] == 1.5 and isinstance(out["a"], float)
    assert torch.equal(out["b"][0], torch.arange(3)) and out["b"][1] == [2]
