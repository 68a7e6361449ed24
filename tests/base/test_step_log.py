"""Progress lines: one named line per training epoch, evaluation progress every N batches, both to the log and
the console that runs the workflow."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from leukoreport.base.step_log import eta_seconds, rough_duration, step_log
from leukoreport.training.two_phase import PhaseConfig, TrainConfig, epoch_line, train

ROOT = Path(__file__).resolve().parents[2]
CFG = TrainConfig.defaults(
    size=32,
    batch_size=8,
    pretrained=False,
    phases=[PhaseConfig(True, 1e-2, 3, 1), PhaseConfig(False, 1e-3, 3, 1)],
    device="cpu",
    num_workers=0,
    precision="fp32",
    channels_last=False,
)
EPOCH = re.compile(
    r"phase (\d) \((frozen|unfrozen)\) epoch (\d+)/(\d+): train loss ([\d.]+), valid loss ([\d.]+), "
    r"accuracy ([\d.]+)%, ([\d.]+) s, est\. ([\d.]+ (?:s|min|h)) left in phase"
    r"( \(at most; early stopping may end sooner\))?"
)
BARE_LIST = re.compile(r"^\s*\[\d+, [-\d.e]+")


@pytest.fixture(scope="module")
def logged_training(tiny_split, tmp_path_factory):
    """A tiny two-phase run inside ``step_log``, with ``sys.stdout``/``sys.stderr`` on file descriptors 1 and 2
    as in a Snakemake script (pytest's capture otherwise keeps fastai's prints out of the log)."""
    log_path = tmp_path_factory.mktemp("progress") / "train.log"
    saved = sys.stdout, sys.stderr
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115 - restored in the finally below
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    try:
        with step_log(log_path) as log:
            print("a plain print reaches this log")  # as fastai's bare lists would
            result = train(tiny_split, CFG, seed=7, threads=1, progress=log.progress)
    finally:
        sys.stdout.close(), sys.stderr.close()
        sys.stdout, sys.stderr = saved
    return result, log_path.read_text()


def test_eta_and_durations_by_hand():
    assert eta_seconds(146.0, 3, 20) == 146.0 * 17
    assert eta_seconds(2.5, 4, 4) == 0.0 and eta_seconds(2.5, 5, 4) == 0.0
    assert [rough_duration(s) for s in (0.04, 7.44, 146.2, 2482, 9000)] == ["0.0 s", "7.4 s", "146 s", "41 min",
                                                                             "2.5 h"]
    line = epoch_line(1, True, 3, 20, 1.2344, 1.0571, 0.5839, 146.2, eta_seconds(81.0, 3, 20))  # 1377 s
    assert line == ("phase 1 (frozen) epoch 3/20: train loss 1.234, valid loss 1.057, accuracy 58.4%, 146 s, "
                    "est. 23 min left in phase (at most; early stopping may end sooner)")
    assert epoch_line(2, False, 5, 5, 0.5, 0.25, 1.0, 12.0, 0.0).endswith("accuracy 100.0%, 12 s, est. 0.0 s "
                                                                          "left in phase")


def test_step_log_progress_goes_to_log_and_console(tmp_path):
    log_path = tmp_path / "step.log"
    code = (
        "from leukoreport.base.step_log import step_log\n"
        f"with step_log({str(log_path)!r}) as log:\n"
        "    print('plain output')\n"
        "    log.progress('phase 1 (frozen) epoch 1/2: progress line')\n"
        "    print('more output')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "phase 1 (frozen) epoch 1/2: progress line\n" and proc.stdout == ""
    assert log_path.read_text().splitlines() == ["plain output", "phase 1 (frozen) epoch 1/2: progress line",
                                                 "more output"]


def test_one_named_line_per_epoch_matching_the_recorder(logged_training):
    (learn, history, info), log = logged_training
    lines = [line for line in log.splitlines() if line.startswith("phase ")]
    parsed = [EPOCH.fullmatch(line) for line in lines]
    assert all(parsed), lines
    assert len(parsed) == len(history) == sum(p["epochs_run"] for p in info["phases"])
    for m, row in zip(parsed, history.to_dict("records")):
        phase = info["phases"][row["phase"] - 1]
        assert (int(m[1]), m[2], int(m[3]), int(m[4])) == (
            row["phase"], "frozen" if phase["frozen"] else "unfrozen", row["phase_epoch"], phase["max_epochs"])
        assert float(m[5]) == pytest.approx(row["train_loss"], abs=5e-4)
        assert float(m[6]) == pytest.approx(row["valid_loss"], abs=5e-4)
        assert float(m[7]) == pytest.approx(100 * row["accuracy"], abs=0.05)
        assert (m[10] is None) == (row["phase_epoch"] == phase["max_epochs"])  # 'at most' until the last one
    # the last phase's lines against the Recorder itself (train_loss, valid_loss, accuracy)
    last = parsed[-len(learn.recorder.values):]
    for m, values in zip(last, learn.recorder.values):
        assert [float(m[5]), float(m[6]), float(m[7]) / 100] == pytest.approx(list(values[:3]), abs=5e-4)


def test_no_bare_fastai_lists_and_no_progress_callback_left(logged_training):
    (learn, _, _), log = logged_training
    assert "a plain print reaches this log" in log and "train loss" in log
    assert not [line for line in log.splitlines() if BARE_LIST.match(line)]
    assert learn.logger is print  # fastai's logger is only silenced during the fits
    assert not [cb for cb in learn.cbs if type(cb).__name__ in ("EpochProgress", "BatchProgress")]


def test_evaluation_progress_every_n_batches(logged_training, tiny_split):
    from leukoreport.inference.evaluate import predict

    (learn, _, _), _ = logged_training
    images = tiny_split[["path", "label"]]  # 30 images, 15 batches of 2
    lines: list[str] = []
    big = predict(learn, images, batch_size=2, progress=lines.append, progress_every=4)
    assert len(lines) == 3, lines
    for line, done in zip(lines, (8, 16, 24)):
        m = re.fullmatch(r"evaluated (\d+)/30 images \(([\d.]+)%\), [\d.]+ (?:s|min|h), est\. [\d.]+ (?:s|min|h) left",
                         line)
        assert m and int(m[1]) == done and float(m[2]) == pytest.approx(100 * done / 30, abs=0.05), line
    quiet = predict(learn, images, batch_size=2, progress=lines.append, progress_every=100)
    assert len(lines) == 3 and quiet.equals(big)  # the callback changes no prediction
    predict(learn, images.head(5), batch_size=8, progress=lines.append, progress_every=1)  # one batch: silent
    assert len(lines) == 3


def test_tta_progress_counts_every_pass(logged_training, tiny_split):
    from leukoreport.inference.evaluate import TTA_PASSES, predict, seeded_tta

    (learn, _, _), _ = logged_training
    images = tiny_split[["path", "label"]].head(12)  # 3 batches of 4 per pass, 5 passes
    lines: list[str] = []
    pred = predict(learn, images, batch_size=4, tta=True, seed=3, progress=lines.append, progress_every=4)
    tta_lines = [line for line in lines if line.startswith("test-time augmentation")]
    assert len(lines) == len(tta_lines) == 3 * TTA_PASSES // 4, lines
    assert tta_lines[0].startswith(f"test-time augmentation ({TTA_PASSES} passes): 16/{12 * TTA_PASSES} images")
    assert not [cb for cb in learn.cbs if type(cb).__name__ == "BatchProgress"]
    with learn.no_bar():
        direct = seeded_tta(learn, learn.dls.test_dl(list(images["path"]), bs=4), 3).numpy()
    assert pred[["prob_alpha", "prob_beta", "prob_gamma"]].to_numpy() == pytest.approx(direct, abs=1e-5)
