"""The image cache: shapes, the fastai Resize crop, the memory-mapped file (no padding, written as decoded,
broken files refused), and loaders that give the same batches either way."""

from __future__ import annotations

import random
import tracemalloc

import numpy as np
import pytest
import torch
from PIL import Image

from leukoreport.base.errors import LeukoError
from leukoreport.data import image_cache as fastload
from leukoreport.data.image_cache import build_cache, load_cache, resized_shape, save_cache, split_cache
from leukoreport.training.cached_loader import cached_dataloaders, copy_in_slices
from leukoreport.training.two_phase import PhaseConfig, TrainConfig, make_dataloaders


def _write_images(folder, shapes, seed=0):
    """Noise images of the given (width, height), as PNG files; their paths."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (w, h) in enumerate(shapes):
        p = folder / f"img{i:03d}.png"
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(p)
        paths.append(str(p))
    return paths


def test_resized_shape_keeps_the_aspect_ratio():
    assert resized_shape(360, 363, 224) == (226, 224)  # (height, width): 363 * 224 / 360 = 225.9
    assert resized_shape(400, 200, 100) == (100, 200)
    assert resized_shape(50, 50, 64) == (64, 64)


def test_cache_holds_the_pil_bilinear_resize(tmp_path, monkeypatch):
    paths = _write_images(tmp_path, [(60, 64), (64, 60), (80, 80)])
    cache = build_cache(paths, 32, out=tmp_path / "c.bin")
    assert isinstance(cache.pixels, np.memmap) and cache.shapes.tolist() == [[34, 32], [32, 34], [32, 32]]
    assert cache.pixels.shape == (34 * 32 * 2 + 32 * 32, 3)  # one image after the other, no padding
    with Image.open(paths[0]) as img:
        expected = np.asarray(img.convert("RGB").resize((32, 34), Image.BILINEAR))
    assert np.array_equal(cache.image(0), expected)
    # centre crop (validation) and the random crop stays inside the image
    assert np.array_equal(cache.crop(0, None), expected[1:33, :32])
    for _ in range(20):
        crop = cache.crop(1, random.Random(_))
        assert crop.shape == (32, 32, 3)
    in_temp = build_cache(paths, 32)  # without `out`: an anonymous temporary file
    assert in_temp.paths == cache.paths and np.array_equal(in_temp.pixels, cache.pixels)
    save_cache(in_temp, tmp_path / "again.bin")
    again = load_cache(tmp_path / "again.bin")
    assert again.paths == cache.paths and np.array_equal(again.pixels, cache.pixels) and again.size == 32
    assert (tmp_path / "again.bin").read_bytes() == (tmp_path / "c.bin").read_bytes()
    assert build_cache(paths, 32, processes=2).shapes.tolist() == cache.shapes.tolist()
    monkeypatch.setattr(fastload, "RELEASE_BYTES", 3 * 1000)  # the copy to a device, in slices of 1000 pixels
    assert torch.equal(copy_in_slices(cache, torch.from_numpy(np.array(cache.pixels)), "cpu"),
                       torch.from_numpy(np.array(cache.pixels)))
    with pytest.raises(LeukoError, match="x.bin: image cache not found"):
        load_cache(tmp_path / "x.bin")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(LeukoError, match="bad.png: cannot decode image"):
        build_cache([str(tmp_path / "bad.png")], 32)


def test_16_bit_grayscale_is_refused_and_leaves_no_cache_file(tmp_path):
    """fastai's loader clips 16-bit grayscale above 255 to white; the cache refuses it rather than differ."""
    paths = _write_images(tmp_path / "images", [(40, 40)] * 2)
    values = (np.arange(32 * 32, dtype=np.uint32).reshape(32, 32) * 64).astype(np.uint16)
    Image.fromarray(values).save(tmp_path / "images" / "g16.tif")
    with pytest.raises(LeukoError) as info:
        build_cache(paths + [str(tmp_path / "images" / "g16.tif")], 32, out=tmp_path / "out" / "c.bin")
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(f"{tmp_path / 'images' / 'g16.tif'}: ") and "16-bit grayscale" in msg
    assert list((tmp_path / "out").iterdir()) == []  # neither the cache nor its temporary file


def test_a_failed_build_leaves_no_cache_file(tmp_path):
    paths = _write_images(tmp_path / "images", [(40, 40)] * 3)
    (tmp_path / "images" / "bad.png").write_bytes(b"not a png")
    with pytest.raises(LeukoError, match="bad.png: cannot decode image"):
        build_cache(paths + [str(tmp_path / "images" / "bad.png")], 32, out=tmp_path / "out" / "c.bin")
    assert list((tmp_path / "out").iterdir()) == []  # neither the cache nor its temporary file


def test_the_cache_file_holds_no_padding(tmp_path):
    paths = _write_images(tmp_path / "images", [(40, 40)] * 10 + [(4000, 40)])
    out = tmp_path / "c.bin"
    cache = build_cache(paths, 40, out=out)
    assert cache.shapes.tolist() == [[40, 40]] * 10 + [[40, 4000]]
    pixels = 10 * 40 * 40 * 3 + 40 * 4000 * 3  # padded to the wide image it would be 11 * 40 * 4000 * 3
    index = sum(len(p) for p in paths) + 1024  # the paths, shapes and fixed header and trailer
    assert pixels < out.stat().st_size <= pixels + index
    assert np.array_equal(cache.crop(10, None), cache.image(10)[:, 1980:2020])


def test_the_cache_is_written_as_it_is_decoded(tmp_path):
    """Peak Python-tracked memory (numpy arrays) of a build is a few images, not the set (let alone twice)."""
    n, side = 40, 128
    paths = _write_images(tmp_path / "images", [(side, side)] * n)
    decoded = iter(paths)
    tracemalloc.start()
    try:
        build_cache(decoded, side, out=tmp_path / "c.bin")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    one = side * side * 3
    assert load_cache(tmp_path / "c.bin").nbytes == n * one
    assert peak < 8 * one, f"peak {peak} bytes while building {n} images of {one} bytes"


def test_a_truncated_or_corrupt_cache_is_refused_in_one_line(tmp_path):
    paths = _write_images(tmp_path / "images", [(40, 40), (50, 40)])
    good = tmp_path / "good.bin"
    build_cache(paths, 32, out=good)
    data = good.read_bytes()
    broken = {
        "truncated.bin": data[:-100],  # the index cut off
        "short.bin": data[:10],
        "pixels.bin": data[:64] + data[64 + 300:],  # pixels missing, index intact
        "index.bin": data[:-40] + b"x" * 24 + data[-16:],  # index garbled
        "other.bin": b"PK\x03\x04" + bytes(200),  # not a cache at all (e.g. the former .npz)
    }
    for name, content in broken.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(LeukoError) as err:
            load_cache(tmp_path / name)
        message = str(err.value)
        assert "\n" not in message and f"{name}: not an image cache or truncated" in message, message


def _varied_split(root):
    """A split table over 3 classes of images of different shapes (so that the padding would show)."""
    from leukoreport.data.images import discover
    from leukoreport.data.split import stratified_split

    rng = random.Random(1)
    for c, name in enumerate(["alpha", "beta", "gamma"]):
        _write_images(root / name, [(rng.randint(36, 70), rng.randint(36, 70)) for _ in range(8)], seed=c)
    return stratified_split(discover(root), (0.6, 0.2, 0.2), seed=42)


class _PaddedItems:
    """The former in-memory cache, written independently: every image decoded with PIL, zero-padded into one
    (n, H, W, 3) array, batches gathered by 3-D indexing; same crop draws as leukoreport.data.image_cache."""

    def __init__(self, paths, size, index, targets, train):
        arrays = []
        for p in paths:
            with Image.open(p) as img:
                img = img.convert("RGB")
                h, w = resized_shape(img.width, img.height, size)
                arrays.append(np.asarray(img.resize((w, h), Image.BILINEAR)))
        self.shapes = [a.shape[:2] for a in arrays]
        padded = np.zeros((len(arrays), max(h for h, _ in self.shapes), max(w for _, w in self.shapes), 3), np.uint8)
        for i, a in enumerate(arrays):
            padded[i, :a.shape[0], :a.shape[1]] = a
        self.pixels, self.size = torch.from_numpy(padded), size
        self.index, self.targets, self.train = index, targets, train
        self.split_idx = 0 if train else 1

    def __len__(self):
        return len(self.index)

    def _origin(self, i):
        h, w = self.shapes[i]
        fy, fx = (random.random(), random.random()) if self.train else (0.5, 0.5)
        return round((h - self.size) * fy), round((w - self.size) * fx)

    def __getitem__(self, k):
        from fastai.torch_core import TensorCategory, TensorImage

        i = self.index[k]
        top, left = self._origin(i)
        crop = self.pixels[i, top:top + self.size, left:left + self.size]
        return TensorImage(crop.permute(2, 0, 1).contiguous()), TensorCategory(self.targets[k])

    def batch(self, ks):
        from fastai.torch_core import TensorCategory, TensorImage

        which = torch.tensor([self.index[k] for k in ks])
        top, left = (torch.tensor(v) for v in zip(*(self._origin(self.index[k]) for k in ks)))
        offsets = torch.arange(self.size)
        rows, cols = top[:, None] + offsets, left[:, None] + offsets
        images = self.pixels[which[:, None, None], rows[:, :, None], cols[:, None, :]]
        return TensorImage(images.permute(0, 3, 1, 2).contiguous()), TensorCategory(torch.tensor(
            [self.targets[k] for k in ks]))


def _epoch(loader, seed=5):
    loader.rng = random.Random(0)
    random.seed(seed), torch.manual_seed(seed)
    return list(loader)


@pytest.mark.parametrize("batched", [True, False])
def test_memory_mapped_batches_equal_the_padded_in_memory_ones(tmp_path, batched, monkeypatch):
    monkeypatch.setattr(fastload, "RELEASE_BYTES", 1)  # the mapped pages are dropped after every read
    split = _varied_split(tmp_path / "images")
    cfg = TrainConfig.defaults(size=32, batch_size=4, pretrained=False, phases=[PhaseConfig(True, 1e-3, 1, 1)],
                               device="cpu", num_workers=0, precision="fp32", channels_last=False)
    dls = make_dataloaders(split, cfg, "cpu")
    paths = [str(p) for p in (*dls.train.items, *dls.valid.items)]
    split_cache(split, 32, out=tmp_path / "c.bin")
    cache = load_cache(tmp_path / "c.bin")
    assert isinstance(cache.pixels, np.memmap) and len(set(map(tuple, cache.shapes.tolist()))) > 3
    mapped = cached_dataloaders(dls, cache, paths, batched=batched)
    for loader in (mapped.train, mapped.valid):
        new = _epoch(loader)
        items = loader.dataset
        loader.dataset = _PaddedItems(cache.paths, 32, items.index, items.targets, items.train)
        old = _epoch(loader)
        loader.dataset = items
        assert len(new) == len(old) == len(loader) > 0
        for (x1, y1), (x2, y2) in zip(new, old):
            assert torch.equal(x1, x2) and torch.equal(y1, y2) and x1.dtype == torch.float32


def test_batched_and_per_item_loaders_give_identical_batches(tiny_split):
    cfg = TrainConfig.defaults(size=32, batch_size=4, pretrained=False, phases=[PhaseConfig(True, 1e-3, 1, 1)],
                               device="cpu", num_workers=0, precision="fp32", channels_last=False)
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
