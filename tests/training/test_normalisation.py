"""Recipe keys `arch` and `norm`: GroupNorm and frozen BatchNorm models, other ResNets, their export and rebuild."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from leukoreport.base.errors import LeukoError
from leukoreport.training.normalisation import group_count, norm_params_callback, set_norm
from leukoreport.training.safe_export import export_safe, learner_from_spec, learner_signature, model_layers
from leukoreport.training.two_phase import (
    build_learner,
    effective_init,
    export_learner,
    make_dataloaders,
    train,
)
from tests.conftest import tiny_train_config

CFG = tiny_train_config()


def _batchnorms(model) -> list:
    return [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]


@pytest.fixture(scope="module")
def dls(tiny_split):
    return make_dataloaders(tiny_split, CFG, "cpu")


@pytest.fixture(scope="module")
def group_trained(tiny_split):
    return train(tiny_split, replace(CFG, norm="group"), seed=3, threads=1)


@pytest.mark.parametrize("channels, groups", [(64, 32), (1024, 32), (48, 24), (30, 30), (31, 31), (66, 22), (1, 1)])
def test_group_count_is_the_largest_divisor_up_to_32(channels, groups):
    assert group_count(channels) == groups
    assert channels % groups == 0 and not any(channels % g == 0 for g in range(groups + 1, min(channels, 32) + 1))


def test_group_norm_replaces_every_batchnorm_and_keeps_the_affine_parameters(dls):
    learn = build_learner(dls, pretrained=False)
    bns = _batchnorms(learn.model)
    assert len(bns) == 20 + 2  # resnet18's 20 BatchNorm2d, the head's 2 BatchNorm1d
    with torch.no_grad():
        for i, bn in enumerate(bns):  # distinct values, so that copying is checked
            bn.weight.copy_(torch.linspace(0.5, 1.5, bn.num_features) + i)
            bn.bias.copy_(torch.linspace(-1, 1, bn.num_features) - i)
    expected = [(bn.num_features, bn.eps, bn.weight.clone(), bn.bias.clone()) for bn in bns]
    set_norm(learn.model, "group")
    gns = [m for m in learn.model.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert not _batchnorms(learn.model) and len(gns) == len(bns)
    for gn, (channels, eps, weight, bias) in zip(gns, expected):
        assert gn.num_channels == channels and gn.num_groups == group_count(channels) and gn.eps == eps
        assert torch.equal(gn.weight, weight) and torch.equal(gn.bias, bias)


def test_group_norm_output_equals_a_direct_computation():
    bn = torch.nn.BatchNorm2d(64)
    with torch.no_grad():
        bn.weight.copy_(torch.linspace(0.5, 2.0, 64))
        bn.bias.copy_(torch.linspace(-1.0, 1.0, 64))
    gn = set_norm(torch.nn.Sequential(bn), "group")[0]
    x = torch.randn(2, 64, 4, 5)
    groups = x.reshape(2, 32, -1)  # 32 groups of 2 channels, statistics per image and group
    mean, var = groups.mean(-1, keepdim=True), groups.var(-1, unbiased=False, keepdim=True)
    direct = ((groups - mean) / torch.sqrt(var + bn.eps)).reshape(x.shape)
    direct = direct * bn.weight[:, None, None] + bn.bias[:, None, None]
    assert gn.num_groups == 32 and torch.allclose(gn(x), direct.detach(), atol=1e-5)


def test_group_norm_model_trains_exports_and_loads_without_leukoreport(group_trained, tiny_split, tmp_path,
                                                                       predict_without_leukoreport):
    learn, history, info = group_trained
    assert not _batchnorms(learn.model) and info["norm"] == "group" and info["arch"] == "resnet18"
    assert history["train_loss"].notna().all() and len(history) == 2
    out = tmp_path / "model.pkl"
    export_learner(learn, out)
    pred, total, stdout = predict_without_leukoreport(out, tiny_split["path"].iloc[0], tmp_path)
    assert "BLOCKED" in stdout and pred in {"alpha", "beta", "gamma"} and total == pytest.approx(1.0, abs=1e-5)


def test_group_norm_parameters_train_while_the_body_is_frozen(dls):
    """Like fastai's BatchNorm (train_bn): the frozen phase updates the body's GroupNorm, not its convolutions."""
    learn = build_learner(dls, pretrained=False, norm="group")
    learn.freeze()
    body = learn.model[0]
    gn = next(m for m in body.modules() if isinstance(m, torch.nn.GroupNorm))
    conv = next(m for m in body.modules() if isinstance(m, torch.nn.Conv2d))
    before_gn, before_conv = gn.weight.detach().clone(), conv.weight.detach().clone()
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, 1e-2, cbs=[norm_params_callback()])
    assert not torch.equal(gn.weight, before_gn) and torch.equal(conv.weight, before_conv)
    assert learn.opt.state[gn.weight]["force_train"] and not learn.opt.state[gn.weight]["do_wd"]


def test_frozen_norm_keeps_the_initial_statistics_after_training(tiny_split):
    from torchvision.ops.misc import FrozenBatchNorm2d

    cfg = replace(CFG, norm="frozen")
    torch.manual_seed(0)
    learn = build_learner(make_dataloaders(tiny_split, cfg, "cpu"), pretrained=False, norm="frozen")
    frozen = [m for m in learn.model.modules() if isinstance(m, FrozenBatchNorm2d)]
    assert len(frozen) == 20 and not [m for m in _batchnorms(learn.model) if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():  # statistics other than the default 0 and 1, as ImageNet weights would bring
        for i, m in enumerate(frozen):
            m.running_mean.fill_(0.1 * i)
            m.running_var.fill_(1 + 0.05 * i)
    initial = [{k: v.clone() for k, v in m.state_dict().items()} for m in frozen]
    learn.unfreeze()
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, 1e-2)
    for m, before in zip(frozen, initial):
        assert all(torch.equal(m.state_dict()[k], v) for k, v in before.items())
    head = _batchnorms(learn.model)  # the head's BatchNorm1d layers stay and still track their batches
    assert [type(m).__name__ for m in head] == ["BatchNorm1d"] * 2 and all(m.num_batches_tracked > 0 for m in head)


def test_frozen_norm_holds_the_batchnorm_statistics_it_replaces():
    bn = torch.nn.BatchNorm2d(4)
    with torch.no_grad():
        bn.running_mean.copy_(torch.tensor([0.1, 0.2, 0.3, 0.4]))
        bn.running_var.copy_(torch.tensor([1.0, 2.0, 3.0, 4.0]))
        bn.weight.copy_(torch.tensor([1.0, 0.5, 2.0, 1.5]))
        bn.bias.copy_(torch.tensor([0.0, 1.0, -1.0, 0.5]))
    bn.eval()
    x = torch.randn(3, 4, 5, 5)
    frozen = set_norm(torch.nn.Sequential(bn), "frozen")
    frozen.train()  # train mode changes nothing for a frozen BatchNorm
    direct = (x - bn.running_mean[:, None, None]) / torch.sqrt(bn.running_var[:, None, None] + bn.eps)
    direct = direct * bn.weight[:, None, None] + bn.bias[:, None, None]
    assert torch.allclose(frozen(x), direct.detach(), atol=1e-6)


@pytest.mark.parametrize("arch, convs", [("resnet34", 36), ("resnet50", 53)])
def test_other_resnets_build_with_the_right_outputs(dls, arch, convs):
    from torchvision.models import get_model

    learn = build_learner(dls, pretrained=False, arch=arch)
    linear = [m for m in learn.model.modules() if isinstance(m, torch.nn.Linear)]
    assert linear[-1].out_features == 3 == len(dls.vocab)
    body_convs = [m for m in learn.model[0].modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(body_convs) == convs
    reference = get_model(arch, weights=None)
    n_body = sum(p.numel() for p in learn.model[0].parameters())
    assert n_body == sum(p.numel() for n, p in reference.named_parameters() if not n.startswith("fc."))
    assert model_layers(learn.model) == (arch, "batch")


def test_the_default_learner_is_the_papers_resnet18(dls):
    """arch and norm at their defaults build exactly what vision_learner(resnet18) builds, weights included."""
    from fastai.torch_core import set_seed
    from fastai.vision.all import accuracy, resnet18, vision_learner

    set_seed(9, reproducible=True)
    ours = build_learner(dls, pretrained=False).model.state_dict()
    set_seed(9, reproducible=True)
    paper = vision_learner(dls, resnet18, pretrained=False, metrics=accuracy).model.state_dict()
    assert list(ours) == list(paper) and all(torch.equal(ours[k], paper[k]) for k in paper)


@pytest.mark.parametrize("norm", ["group", "frozen"])
def test_safetensors_pair_rebuilds_the_model_identically(tiny_split, tmp_path, norm):
    learn = train(tiny_split, replace(CFG, norm=norm), seed=4, threads=1)[0]
    hashes = export_safe(learn, tmp_path / "model.safetensors", tmp_path / "model.json", {"norm": norm})
    spec = json.loads((tmp_path / "model.json").read_text())
    assert spec["architecture"] == "resnet18" and spec["norm"] == norm and len(hashes["weights_sha256"]) == 64
    from safetensors.torch import load_file

    rebuilt = learner_from_spec(spec, load_file(tmp_path / "model.safetensors"))
    assert learner_signature(rebuilt) == learner_signature(learn)
    items = tiny_split["path"].tolist()
    learn.model.cpu()
    with learn.no_bar(), rebuilt.no_bar():
        mine = learn.get_preds(dl=learn.dls.test_dl(items, bs=4, device="cpu"))[0]
        theirs = rebuilt.get_preds(dl=rebuilt.dls.test_dl(items, bs=4))[0]
    assert torch.equal(mine, theirs)


def test_a_model_json_without_norm_is_a_batchnorm_model(tiny_split, tmp_path):
    """model.json files written before `norm` existed rebuild as BatchNorm models."""
    learn = train(tiny_split, CFG, seed=4, threads=1)[0]
    export_safe(learn, tmp_path / "model.safetensors", tmp_path / "model.json", {})
    spec = json.loads((tmp_path / "model.json").read_text())
    from safetensors.torch import load_file

    del spec["norm"]
    rebuilt = learner_from_spec(spec, load_file(tmp_path / "model.safetensors"))
    assert learner_signature(rebuilt) == learner_signature(learn) and len(_batchnorms(rebuilt.model)) == 22


def test_init_says_when_groupnorm_starts_from_random_weights():
    group = replace(CFG, pretrained=True, norm="group")
    assert effective_init(group, "ImageNet (torchvision IMAGENET1K_V1)") == (
        False, "random (no ImageNet weights for GroupNorm)")
    assert effective_init(replace(CFG, pretrained=True, norm="frozen"), "ImageNet (torchvision IMAGENET1K_V1)") == (
        True, "ImageNet (torchvision IMAGENET1K_V1)")
    assert effective_init(CFG) == (False, "random (pretrained: false)")


@pytest.mark.parametrize("key, value", [("arch", "resnet101"), ("norm", "layer")])
def test_unknown_arch_or_norm_names_the_key(dls, key, value):
    with pytest.raises(LeukoError, match=f"^config key {key}: '{value}' is not one of"):
        build_learner(dls, pretrained=False, **{key: value})


def test_the_variants_section_says_when_a_variant_started_from_random_weights(tmp_path):
    from leukoreport.report.sections.variants import init_note
    from leukoreport.stats.run_tables import run_folder, run_keys

    keys = run_keys([42], [1, 2])
    for name, init in (("paper", "ImageNet (torchvision IMAGENET1K_V1)"),
                       ("group_norm", "random (no ImageNet weights for GroupNorm)")):
        for key in keys:
            folder = run_folder(tmp_path / name, key)
            folder.mkdir(parents=True)
            (folder / "train.json").write_text(json.dumps({"init": init}))
    assert init_note(tmp_path / "paper", keys) == ""
    assert init_note(tmp_path / "group_norm", keys) == "; initialisation: random (no ImageNet weights for GroupNorm)"
    assert init_note(tmp_path / "missing", keys) == ""
