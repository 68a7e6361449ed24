"""A real train job killed mid-training (Snakemake and the job, SIGKILL) resumes from its last checkpoint when the
workflow is rerun, and ends with the weights of a run nobody interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.slow

RUN = "results/splits/42/seeds/1"
TARGET = f"{RUN}/model.pkl"


def _config(project) -> str:
    """The smoke config for one seed, three epochs per phase and no early stop (so the kill lands mid-phase)."""
    cfg = yaml.safe_load((project / "config" / "smoke.yaml").read_text())
    cfg["seeds"] = [1]
    for phase in cfg["phases"].values():
        phase.update(max_epochs=3, patience=10)
    path = project / "config" / "interrupt.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path.relative_to(project))


def _tensors(path):
    from safetensors.torch import load_file

    return load_file(str(path))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, copy_project, snakemake):
    project = copy_project(tmp_path_factory.mktemp("whole") / "project")
    out = snakemake(project, TARGET, "--cores", "2", "--configfile", _config(project))
    assert out.returncode == 0, out.stdout[-3000:]
    assert "resuming" not in out.stdout
    return project


def test_a_killed_train_job_resumes_after_its_last_epoch(tmp_path, copy_project, snakemake, uninterrupted):
    import torch

    from leukoreport.training.checkpoint import CHECKPOINT_NAME

    project = copy_project(tmp_path / "project")
    config = _config(project)
    proc = subprocess.Popen([sys.executable, "-m", "snakemake", TARGET, "--cores", "2", "--configfile", config],
                            cwd=project, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    seen = []
    try:
        for line in proc.stdout:
            seen.append(line)
            if "phase 1 (frozen) epoch 2/3" in line:  # epoch 1's checkpoint is on disk by now
                break
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # a hard kill of Snakemake and its job, as a lost node would be
        proc.wait()
    assert any("epoch 2/3" in line for line in seen), "".join(seen)[-3000:]
    checkpoint = project / RUN / CHECKPOINT_NAME
    assert checkpoint.is_file() and not (project / TARGET).exists()
    done = torch.load(checkpoint, weights_only=True)["epochs_done"]
    assert done in (1, 2)  # the kill may have come before or after epoch 2's checkpoint

    unlock = snakemake(project, TARGET, "--unlock", "--cores", "2", "--configfile", config)
    assert unlock.returncode == 0, unlock.stdout[-2000:]
    rerun = snakemake(project, TARGET, "--cores", "2", "--configfile", config)
    assert rerun.returncode == 0, rerun.stdout[-3000:]
    phase = "phase 1, epoch" if done < 3 else "phase 1 finished"
    assert f"resuming after epoch {done} ({phase}" in rerun.stdout
    assert f"phase 1 (frozen) epoch {done}/3" not in rerun.stdout  # finished epochs are not run again
    assert f"phase 1 (frozen) epoch {done + 1}/3" in rerun.stdout

    run = project / RUN
    assert not checkpoint.exists() and not (run / ".train.lock").exists()
    assert not [p.name for p in run.iterdir() if p.name.startswith(".")]
    whole, resumed = _tensors(uninterrupted / RUN / "model.safetensors"), _tensors(run / "model.safetensors")
    assert whole.keys() == resumed.keys() and all(torch.equal(whole[k], resumed[k]) for k in whole)
    info = json.loads((run / "train.json").read_text())
    assert info["resumed_after_epoch"] == done
    cols = ["epoch", "train_loss", "valid_loss", "accuracy"]
    a, b = pd.read_csv(uninterrupted / RUN / "history.csv"), pd.read_csv(run / "history.csv")
    assert a[cols].equals(b[cols])
