"""The image cache: shapes, the fastai Resize crop, and loaders that give the same batches either way."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from PIL import Image

from leukoreport.errors import LeukoError
from leukoreport.fastload import (build_cache, cached_dataloaders, load_cache, resized_shape, save_cache,
                                  split_cache)
from leukoreport.train import PhaseConfig, TrainConfig, make_dataloaders


def test_resized_shape_keeps_the_aspect_ratio():
    assert resized_shape(360, 363, 224) == (226, 224)  # (height, width): 363 * 224 / 360 = 225.9
    assert resized_shape(400, 200, 100) == (100, 200)
    assert resized_shape(50, 50, 64) == (64, 64)


def test_cache_holds_the_pil_bilinear_resize(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for i, (w, h) in enumerate([(60, 64), (64, 60), (80, 80)]):
        p = tmp_path / f"img{i}.png"
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(p)
        paths.append(str(p))
    cache = build_cache(paths, 32)
    assert cache.pixels.shape == (3, 34, 34, 3) and cache.shapes.tolist() == [[34, 32], [32, 34], [32, 32]]
    with Image.open(paths[0]) as img:
        expected = np.asarray(img.convert("RGB").resize((32, 34), Image.BILINEAR))
    assert np.array_equal(cache.pixels[0, :34, :32], expected)
    assert cache.pixels[0, :, 32:].sum() == 0  # zero padding outside the image
    # centre crop (validation) and the random crop stays inside the image
    assert np.array_equal(cache.crop(0, None), expected[1:33, :32])
    for _ in range(20):
        crop = cache.crop(1, random.Random(_))
        assert crop.shape == (32, 32, 3)
    save_cache(cache, tmp_path / "c.npz")
    again = load_cache(tmp_path / "c.npz")
    assert again.paths == cache.paths and np.array_equal(again.pixels, cache.pixels) and again.size == 32
    with pytest.raises(LeukoError, match="x.npz: image cache not found"):
        load_cache(tmp_path / "x.npz")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(LeukoError, match="bad.png: cannot decode image"):
        build_cache([str(tmp_path / "bad.png")], 32)


def test_batched_and_per_item_loaders_give_identical_batches(tiny_split):
    cfg = TrainConfig(size=32, batch_size=4, pretrained=False, phases=[PhaseConfig(True, 1e-3, 1, 1)], device="cpu")
    dls = make_dataloaders(tiny_split, cfg, "cpu")
    cache = split_cache(tiny_split, 32)
    paths = [str(p) for p in (*dls.train.items, *dls.valid.items)]
    batched = cached_dataloaders(dls, cache, paths, batched=True)
    per_item = cached_dataloaders(dls, cache, paths, batched=False)
    for a, b in ((batched.train, per_item.train), (batched.valid, per_item.valid)):
        a.rng, b.rng = random.Random(0), random.Random(0)
        random.seed(5), torch.manual_seed(5)
        xa = list(a)
        random.seed(5), torch.manual_seed(5)
        xb = list(b)
        assert len(xa) == len(xb) == len(a)
        for (x1, y1), (x2, y2) in zip(xa, xb):
            assert torch.equal(x1, x2) and torch.equal(y1, y2) and x1.dtype == torch.float32
    # the validation images are the centre crops, labels from the folder names
    x, y = next(iter(batched.valid))
    assert [dls.vocab[i] for i in y] == [p.parent.name for p in dls.valid.items[:len(y)]]
    with pytest.raises(LeukoError, match="is not in the cache"):
        cached_dataloaders(dls, cache, paths + ["data/elsewhere/x.png"])
