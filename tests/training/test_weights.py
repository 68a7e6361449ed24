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
    monkeypatch.setattr(weights, "weights_url", lambda arch="resnet18": "http://127.0.0.1:9/resnet18-f37072fd.pth")
    with pytest.raises(LeukoError, match="could not be downloaded.*pretrained: false"):
        weights.check_weights(True, download=True, timeout=5)
    assert not list((torch_home / "hub" / "checkpoints").glob("*"))


def test_random_init_needs_no_file(torch_home):
    info = weights.check_weights(False)
    assert not info.pretrained and info.path is None and "random" in info.init


@pytest.mark.parametrize("arch, name, file", [("resnet18", "IMAGENET1K_V1", "resnet18-f37072fd.pth"),
                                              ("resnet34", "IMAGENET1K_V1", "resnet34-b627a593.pth"),
                                              ("resnet50", "IMAGENET1K_V2", "resnet50-11ad3fa6.pth")])
def test_each_architecture_has_the_file_fastai_loads(torch_home, arch, name, file):
    """fastai's vision_learner asks torchvision for the DEFAULT weights; weights.py names the same file."""
    from fastai.vision.all import model_meta
    from torchvision.models import get_model_weights

    from leukoreport.training.normalisation import arch_function

    assert model_meta[arch_function(arch)]["weights"] == "DEFAULT"
    assert get_model_weights(arch).DEFAULT.name == name == weights.weights_name(arch)
    assert weights.weights_path(arch) == torch_home / "hub" / "checkpoints" / file
    assert weights.weights_url(arch) == f"https://download.pytorch.org/models/{file}"
    with pytest.raises(LeukoError) as err:
        weights.check_weights(True, download=False, arch=arch)
    assert str(err.value) == (f"{torch_home / 'hub' / 'checkpoints' / file}: ImageNet weights for {arch} are not "
                              "cached and downloading is off (`download_weights: false`); put the file there or set "
                              "`pretrained: false` in the config")


def test_planted_resnet34_weights_are_the_starting_backbone(torch_home, tiny_split):
    from torchvision.models import resnet34

    torch.manual_seed(5)
    planted = resnet34(weights=None).state_dict()
    path = weights.weights_path("resnet34")
    path.parent.mkdir(parents=True)
    torch.save(planted, path)
    info = weights.check_weights(True, download=False, arch="resnet34")
    assert info.init == "ImageNet (torchvision IMAGENET1K_V1)" and info.path == str(path)
    assert weights.weights_problem(path, info.sha256, "resnet34").startswith("SHA-256 starts with")  # not the real file
    cfg = TrainConfig.defaults(size=32, batch_size=4, num_workers=0, precision="fp32", channels_last=False)
    for norm in ("batch", "frozen"):  # ImageNet statistics are what frozen BatchNorm keeps
        body = build_learner(make_dataloaders(tiny_split, cfg, "cpu"), True, arch="resnet34", norm=norm).model[0]
        got = body.state_dict()
        for key, want in planted.items():
            if not key.startswith("fc.") and not key.endswith("num_batches_tracked"):
                assert torch.equal(got[_body_key(key)], want)


def _body_key(key: str) -> str:
    """torchvision's resnet state-dict key -> the key in fastai's body (children numbered 0-7)."""
    names = ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"]
    first, rest = key.split(".", 1)
    return f"{names.index(first)}.{rest}"


def test_group_norm_needs_no_weights_file(torch_home, tiny_split):
    """pretrained: true with GroupNorm starts from random weights: nothing is loaded or downloaded."""
    cfg = TrainConfig.defaults(size=32, batch_size=4, num_workers=0, precision="fp32", channels_last=False)
    learn = build_learner(make_dataloaders(tiny_split, cfg, "cpu"), True, norm="group")
    assert not (torch_home / "hub" / "checkpoints").exists()
    assert not [m for m in learn.model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
