"""Stain and colour jitter of training batches, checked against skimage and numpy computations."""

from __future__ import annotations

import json
import random
from dataclasses import replace

import numpy as np
import pytest
import torch
from fastai.torch_core import TensorCategory, TensorImage
from fasttransform import Pipeline
from skimage import color

from leukoreport.base.errors import LeukoError
from leukoreport.training.stain_jitter import (
    RGB_FROM_HED,
    StainAugmentation,
    StainJitter,
    hed_to_rgb,
    jitter,
    rgb_to_hed,
    stain_transforms,
    strip_leukoreport,
)
from leukoreport.training.two_phase import TrainConfig, export_learner, make_dataloaders, train
from tests.conftest import tiny_train_config

CFG = tiny_train_config()


def smear_batch(n: int = 6, size: int = 16, seed: int = 0) -> TensorImage:
    """Blood-smear-like float images in [0, 1]: pink background, a purple nucleus, noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images = []
    for _ in range(n):
        img = np.tile(np.array([0.92, 0.78, 0.85]) + rng.uniform(-0.05, 0.05, 3), (size, size, 1))
        cy, cx, r = rng.uniform(4, size - 4, 2).tolist() + [rng.uniform(3, 6)]
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r ** 2] = np.array([0.45, 0.30, 0.62]) + rng.uniform(-0.05, 0.05, 3)
        images.append(np.clip(img + rng.normal(0, 0.03, img.shape), 0.01, 1.0))
    return TensorImage(torch.tensor(np.stack(images), dtype=torch.float32).permute(0, 3, 1, 2).contiguous())


def to_hwc(x) -> np.ndarray:
    return x.as_subclass(torch.Tensor).permute(0, 2, 3, 1).double().numpy()


def draws(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The two U(0, 1) draws (n x 3 each) the transform takes from torch after ``manual_seed(seed)``."""
    torch.manual_seed(seed)
    return torch.rand(n, 3).double().numpy(), torch.rand(n, 3).double().numpy()


def train_pipeline(method: str, strength: float, split_idx: int = 0) -> Pipeline:
    pipe = Pipeline([StainJitter(method, strength)])
    pipe.split_idx = split_idx
    return pipe


def test_hed_conversion_matches_skimage_and_round_trips():
    assert np.array_equal(np.array(RGB_FROM_HED), color.rgb_from_hed)
    x = smear_batch()
    hed = rgb_to_hed(x)
    # skimage's rgb2hed clips the densities at 0; ours keeps the sign so that the inverse is exact
    pixels = to_hwc(x)[:, [0, 5, 9], [3, 8, 12]]
    np.testing.assert_allclose(to_hwc(hed)[:, [0, 5, 9], [3, 8, 12]].clip(min=0), color.rgb2hed(pixels),
                               atol=1e-5)
    np.testing.assert_allclose(hed_to_rgb(hed).numpy(), x.numpy(), atol=1e-5)
    np.testing.assert_allclose(hed_to_rgb(hed).numpy(), color.hed2rgb(to_hwc(hed)).transpose(0, 3, 1, 2),
                               atol=1e-5)


def test_hed_jitter_equals_an_independent_numpy_computation():
    x, y = smear_batch(), TensorCategory(torch.tensor([0, 1, 2, 0, 1, 2]))
    sigma = 0.05
    torch.manual_seed(3)
    out, labels = train_pipeline("hed", sigma)((x, y))
    assert isinstance(out, TensorImage) and out.shape == x.shape and out.dtype == x.dtype
    assert isinstance(labels, TensorCategory) and torch.equal(labels, y)
    u1, u2 = draws(len(x), 3)
    scale, shift = 1 - sigma + 2 * sigma * u1, -sigma + 2 * sigma * u2
    stains = np.log(np.maximum(to_hwc(x), 1e-6)) / np.log(1e-6) @ color.hed_from_rgb
    expected = color.combine_stains(stains * scale[:, None, None] + shift[:, None, None], color.rgb_from_hed)
    np.testing.assert_allclose(to_hwc(out), expected, atol=1e-5)
    assert out.min() >= 0 and out.max() <= 1
    # colour statistics and stain densities change beyond float noise
    mean_before, mean_after = to_hwc(x).mean(axis=(1, 2)), to_hwc(out).mean(axis=(1, 2))
    std_before, std_after = to_hwc(x).std(axis=(1, 2)), to_hwc(out).std(axis=(1, 2))
    assert np.abs(mean_after - mean_before).max() > 0.02 and np.abs(std_after - std_before).max() > 0.005
    hed_before, hed_after = color.rgb2hed(to_hwc(x)), color.rgb2hed(to_hwc(out))
    assert np.abs(hed_after.mean(axis=(1, 2)) - hed_before.mean(axis=(1, 2))).max() > 0.005


def test_hsv_jitter_equals_an_independent_skimage_computation():
    x = smear_batch(seed=1)
    sigma = 0.1
    torch.manual_seed(4)
    out = jitter(x, "hsv", sigma)
    u1, u2 = draws(len(x), 4)
    turn, scale = -sigma + 2 * sigma * u1[:, 0], 1 - sigma + 2 * sigma * u2
    hsv = color.rgb2hsv(to_hwc(x))
    hsv[..., 0] = (hsv[..., 0] + turn[:, None, None]) % 1.0
    hsv[..., 1] = np.clip(hsv[..., 1] * scale[:, None, None, 1], 0, 1)
    hsv[..., 2] = np.clip(hsv[..., 2] * scale[:, None, None, 2], 0, 1)
    np.testing.assert_allclose(to_hwc(out), color.hsv2rgb(hsv), atol=1e-4)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    assert np.abs(to_hwc(out).mean(axis=(1, 2)) - to_hwc(x).mean(axis=(1, 2))).max() > 0.01


@pytest.mark.parametrize("method", ["hed", "hsv"])
def test_jitter_is_pixelwise(method):
    """Spatially permuting the pixels first, with the same random state, permutes the output."""
    x = smear_batch(seed=2)
    perm = torch.randperm(16 * 16, generator=torch.Generator().manual_seed(0))
    shuffle = lambda t: t.flatten(2)[:, :, perm].reshape(t.shape)  # noqa: E731
    torch.manual_seed(9)
    out = jitter(x, method, 0.2)
    torch.manual_seed(9)
    out_of_shuffled = jitter(shuffle(x), method, 0.2)
    assert out.shape == x.shape
    torch.testing.assert_close(out_of_shuffled, shuffle(out), atol=1e-6, rtol=0)


@pytest.mark.parametrize("method,strength", [("none", 0.5), ("hed", 0.0), ("hsv", 0.0)])
def test_none_and_strength_zero_are_the_identity(method, strength):
    x = smear_batch()
    state = torch.get_rng_state()
    out, _ = train_pipeline(method, strength)((x, TensorCategory(torch.zeros(6, dtype=torch.long))))
    assert torch.equal(out, x) and torch.equal(torch.get_rng_state(), state)  # no random draw either
    assert stain_transforms(StainAugmentation(method, strength)) == []


def test_not_applied_on_the_validation_split():
    x = smear_batch()
    out, _ = train_pipeline("hed", 0.5, split_idx=1)((x, TensorCategory(torch.zeros(6, dtype=torch.long))))
    assert torch.equal(out, x)


def test_bad_settings_name_the_key():
    with pytest.raises(LeukoError, match="stain_augmentation.method: 'lab'"):
        StainAugmentation("lab", 0.05)
    with pytest.raises(LeukoError, match="stain_augmentation.strength"):
        StainAugmentation("hed", 1.5)
    config = {"size": 32, "batch_size": 8, "pretrained": False, "schedule": "one_cycle", "augmentation": {},
              "num_workers": 0, "device": "cpu",
              "phases": {p: {"lr": 1e-3, "max_epochs": 1, "patience": 1} for p in ("frozen", "unfrozen")}}
    with pytest.raises(LeukoError, match="config key stain_augmentation: missing"):
        TrainConfig.from_config(config)
    cfg = TrainConfig.from_config({**config, "stain_augmentation": {"method": "hsv", "strength": 0.1}})
    assert cfg.stain == StainAugmentation("hsv", 0.1)
    # the default keeps the paper's recipe
    default = TrainConfig.defaults(num_workers=0, precision="fp32", channels_last=False)
    assert default.stain == StainAugmentation("none", 0.05)


def first_batches(dls, seed: int = 0):
    """The first training and validation batch of ``dls`` after seeding everything."""
    out = []
    for dl in (dls.train, dls.valid):
        dl.rng = random.Random(seed)
        random.seed(seed), torch.manual_seed(seed)
        out.append(next(iter(dl)))
    return out


def test_dataloaders_plain_and_cached_jitter_training_batches_only(tiny_split):
    from fastai.vision.all import Normalize, imagenet_stats

    from leukoreport.data.image_cache import split_cache
    from leukoreport.training.cached_loader import cached_dataloaders

    hed_cfg = replace(CFG, stain=StainAugmentation("hed", 0.3))
    ordered = make_dataloaders(tiny_split, hed_cfg, "cpu")
    ordered.add_tfms([Normalize.from_stats(*imagenet_stats)], "after_batch")  # as vision_learner does
    names = [type(f).__name__ for f in ordered.train.after_batch.fs]
    assert names[-2:] == ["StainJitter", "Normalize"]  # after fastai's augmentation, before Normalize
    plain, hed = make_dataloaders(tiny_split, CFG, "cpu"), make_dataloaders(tiny_split, hed_cfg, "cpu")
    assert [type(f).__name__ for f in plain.train.after_batch.fs] == names[:-2]
    cache = split_cache(tiny_split, 32)
    paths = [str(p) for p in (*plain.train.items, *plain.valid.items)]
    cached = (cached_dataloaders(plain, cache, paths), cached_dataloaders(hed, cache, paths))
    for a, b in ((plain, hed), cached):
        (xa, ya), (va, la) = first_batches(a)
        (xb, yb), (vb, lb) = first_batches(b)
        assert torch.equal(ya, yb) and torch.equal(la, lb)  # labels untouched
        assert (xa - xb).abs().max() > 0.05 and xb.min() >= 0 and xb.max() <= 1  # training batches jittered
        assert torch.equal(va, vb)  # validation batches are not
    strip_leukoreport(hed)
    assert "StainJitter" not in [type(f).__name__ for dl in hed.loaders for f in dl.after_batch.fs]


def test_hed_model_exports_without_leukoreport(tiny_split, tmp_path, predict_without_leukoreport):
    cfg = replace(CFG, stain=StainAugmentation("hed", 0.3))
    learn, history, info = train(tiny_split, cfg, seed=5, threads=1)
    assert info["stain_augmentation"] == {"method": "hed", "strength": 0.3}
    json.dumps(info)  # train.json stays plain JSON
    _, plain_history, plain_info = train(tiny_split, CFG, seed=5, threads=1)
    assert plain_info["stain_augmentation"] == {"method": "none", "strength": 0.05}
    assert not history["train_loss"].equals(plain_history["train_loss"])  # the jitter was on in training
    out = tmp_path / "model.pkl"
    export_learner(learn, out)
    image = tiny_split["path"].iloc[0]
    pred, total, stdout = predict_without_leukoreport(out, image, tmp_path)
    assert "BLOCKED" in stdout
    assert pred in {"alpha", "beta", "gamma"} and total == pytest.approx(1.0, abs=1e-5)
