"""Pretrained weights: a state dict planted in TORCH_HOME is the starting backbone; absence fails early."""

from __future__ import annotations

import pytest
import torch

from leukoreport.base.errors import LeukoError
from leukoreport.training import weights
from leukoreport.training.two_phase import TrainConfig, build_learner, make_dataloaders


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch"


def test_planted_weights_are_the_starting_backbone(torch_home, tiny_split):
    from torchvision.models import resnet18

    torch.manual_seed(123)
    planted = resnet18(weights=None).state_dict()
    path = torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    path.parent.mkdir(parents=True)
    torch.save(planted, path)

    info = weights.check_weights(True, download=False)
    assert info.pretrained and info.path == str(path) and len(info.sha256) == 64

    cfg = TrainConfig.defaults(size=32, batch_size=4, pretrained=True, num_workers=0, precision="fp32",
                               channels_last=False)
    dls = make_dataloaders(tiny_split, cfg, "cpu")
    learn = build_learner(dls, pretrained=True)
    body = learn.model[0].state_dict()
    expected = [v for k, v in planted.items() if not k.startswith("fc.")]
    assert len(body) == len(expected)
    for got, want in zip(body.values(), expected):
        assert torch.equal(got, want)


def test_missing_weights_fail_with_path_and_switch(torch_home):
    with pytest.raises(LeukoError) as err:
        weights.check_weights(True, download=False)
    message = str(err.value)
    assert "\n" not in message
    assert str(torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth") in message
    assert "pretrained: false" in message


def test_failed_download_fails_with_path_and_switch(torch_home, monkeypatch):
    monkeypatch.setattr(weights, "weights_url", lambda: "http://127.0.0.1:9/resnet18-f37072fd.pth")
    with pytest.raises(LeukoError, match="could not be downloaded.*pretrained: false"):
        weights.check_weights(True, download=True, timeout=5)
    assert not list((torch_home / "hub" / "checkpoints").glob("*"))


def test_random_init_needs_no_file(torch_home):
    info = weights.check_weights(False)
    assert not info.pretrained and info.path is None and "random" in info.init
