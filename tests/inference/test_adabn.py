"""AdaBN: running statistics of the copy re-estimated on the set's images (cumulative average), the learner's own
model and the saved model file untouched; a model without BatchNorm is refused."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from PIL import Image, ImageEnhance

from leukoreport.base.errors import LeukoError
from leukoreport.inference.adabn import adabn_learner, adapted_model, batchnorm_layers, has_batchnorm
from leukoreport.inference.model_files import load_model_file
from tests.conftest import tiny_train_config

CFG = tiny_train_config()


@pytest.fixture(scope="module")
def model(tiny_split, tmp_path_factory, exported_model) -> Path:
    return exported_model(tiny_split, CFG, tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def bright(tiny_split, tmp_path_factory) -> list[Path]:
    """Brightened, low-contrast copies of the tiny test images (another lab's illumination)."""
    folder = tmp_path_factory.mktemp("bright")
    out = []
    for i, path in enumerate(tiny_split["path"]):
        img = ImageEnhance.Contrast(ImageEnhance.Brightness(Image.open(path).convert("RGB")).enhance(1.35)).enhance(0.7)
        out.append(folder / f"{i:03d}.png")
        img.save(out[-1])
    return out


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_adabn_adapts_a_copy_and_leaves_the_model_untouched(model, bright):
    import torch

    learn = load_model_file(model)
    original = learn.model
    before = {k: v.detach().clone() for k, v in original.state_dict().items()}
    file_digest = _digest(model)
    # the set's first BatchNorm input, computed independently: the first convolution of the unchanged model
    xb = learn.dls.test_dl(bright, bs=len(bright)).one_batch()[0]
    with torch.no_grad():
        conv = original[0][0](xb)
    expected_mean = conv.mean(dim=(0, 2, 3))
    expected_var = conv.transpose(0, 1).reshape(conv.shape[1], -1).var(dim=1, unbiased=True)
    with adabn_learner(learn, bright, batch_size=len(bright)) as adapted:
        assert adapted.model is not original
        bn = adapted.model[0][1]
        assert not bn.training and bn.momentum is None
        assert torch.allclose(bn.running_mean, expected_mean, atol=1e-5)
        assert torch.allclose(bn.running_var, expected_var, rtol=1e-4, atol=1e-6)
        assert not torch.allclose(bn.running_mean, before["0.1.running_mean"], atol=1e-3)
        probs, _ = adapted.get_preds(dl=learn.dls.test_dl(bright))
        assert torch.allclose(probs.sum(dim=1), torch.ones(len(bright)), atol=1e-5)
    assert learn.model is original
    after = original.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(m.momentum == 0.1 for m in batchnorm_layers(original))
    assert _digest(model) == file_digest


def test_running_statistics_are_the_cumulative_average_over_batches():
    import torch
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    batches = [torch.randn(5, 3, 8, 8) + shift for shift in (0.0, 2.0, -1.0)]
    batches.append(torch.randn(1, 3, 8, 8))  # one image: skipped
    adapted = adapted_model(net, batches)
    with torch.no_grad():
        means = [net[0](b).mean(dim=(0, 2, 3)) for b in batches[:3]]
    assert torch.allclose(adapted[1].running_mean, torch.stack(means).mean(dim=0), atol=1e-5)
    assert int(adapted[1].num_batches_tracked) == 3
    assert torch.equal(net[1].running_mean, torch.zeros(4))  # the original: still fresh
    with pytest.raises(LeukoError, match="at least 2 images"):
        adapted_model(net, [torch.randn(1, 3, 8, 8)])


def test_a_model_without_batchnorm_is_refused():
    import torch
    from torch import nn

    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.GroupNorm(2, 4))
    assert not has_batchnorm(net)
    with pytest.raises(LeukoError, match="no BatchNorm layer"):
        adapted_model(net, [torch.randn(4, 3, 8, 8)])
