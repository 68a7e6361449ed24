"""Decode and resize the split's images once, and feed training from memory instead of JPEG files.

The cache holds each image resized (bilinear, like fastai's ``Resize``) so that its short side is ``size``;
training takes fastai ``Resize``'s square crop from it (random position on the training set, centred on the
validation set), then runs the unchanged fastai batch augmentation. Compared with fastai's per-epoch path the
only difference is the order of crop and resample (resize-then-crop instead of crop-then-resize).
"""

from __future__ import annotations

import copy
import math
import random
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from leukoreport.errors import LeukoError
from leukoreport.files import atomic_path


@dataclass
class ImageCache:
    """Images resized to short side ``size``, zero-padded into one uint8 array ``(n, H, W, 3)``."""

    paths: list[str]
    size: int
    pixels: np.ndarray
    shapes: np.ndarray  # (n, 2): height, width of each image inside the padding

    def __len__(self) -> int:
        return len(self.paths)

    def crop_origin(self, i: int, rand: random.Random | None) -> tuple[int, int]:
        """Top-left corner of fastai ``Resize``'s square crop of image ``i``: drawn from ``rand``, else centred."""
        h, w = (int(v) for v in self.shapes[i])
        fy, fx = (rand.random(), rand.random()) if rand is not None else (0.5, 0.5)
        return round((h - self.size) * fy), round((w - self.size) * fx)

    def crop(self, i: int, rand: random.Random | None) -> np.ndarray:
        """fastai ``Resize`` crop of image ``i``: a size x size square, random position when ``rand`` is given."""
        top, left = self.crop_origin(i, rand)
        return self.pixels[i, top:top + self.size, left:left + self.size]


def resized_shape(width: int, height: int, size: int) -> tuple[int, int]:
    """(height, width) after resizing so that the short side is ``size`` (aspect ratio kept)."""
    scale = size / min(width, height)
    return max(size, round(height * scale)), max(size, round(width * scale))


def _load(args: tuple[str, int]) -> np.ndarray:
    path, size = args
    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            h, w = resized_shape(img.width, img.height, size)
            return np.asarray(img.resize((w, h), Image.BILINEAR), dtype=np.uint8)
    except (OSError, ValueError) as exc:
        raise LeukoError(f"{path}: cannot decode image for the cache ({exc})") from None


def build_cache(paths: list[str], size: int, processes: int = 1) -> ImageCache:
    """Decode and resize every image once (in ``processes`` worker processes when > 1)."""
    if not paths:
        raise LeukoError("image cache: no images")
    jobs = [(str(p), int(size)) for p in paths]
    if processes > 1:
        with ProcessPoolExecutor(processes) as pool:
            arrays = list(pool.map(_load, jobs, chunksize=max(1, math.ceil(len(jobs) / (4 * processes)))))
    else:
        arrays = [_load(j) for j in jobs]
    shapes = np.array([a.shape[:2] for a in arrays], dtype=np.int32)
    pixels = np.zeros((len(arrays), int(shapes[:, 0].max()), int(shapes[:, 1].max()), 3), dtype=np.uint8)
    for i, a in enumerate(arrays):
        pixels[i, :a.shape[0], :a.shape[1]] = a
    return ImageCache([str(p) for p in paths], int(size), pixels, shapes)


def save_cache(cache: ImageCache, out: str | Path) -> None:
    """Write the cache as one ``.npz`` (uncompressed) atomically."""
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, paths=np.array(cache.paths), size=np.array(cache.size), pixels=cache.pixels,
                     shapes=cache.shapes)


def load_cache(path: str | Path) -> ImageCache:
    """Read a cache written by ``save_cache``; LeukoError naming the file when it is missing or broken."""
    path = Path(path)
    try:
        with np.load(path) as data:
            return ImageCache([str(p) for p in data["paths"]], int(data["size"]), data["pixels"], data["shapes"])
    except FileNotFoundError:
        raise LeukoError(f"{path}: image cache not found") from None
    except (OSError, ValueError, KeyError) as exc:
        raise LeukoError(f"{path}: not an image cache ({exc})") from None


def split_cache(split: pd.DataFrame, size: int, processes: int = 1) -> ImageCache:
    """The cache of the train and valid rows of a split table, in split order."""
    rows = split[split["split"].isin(["train", "valid"])]
    return build_cache(list(rows["path"]), size, processes)


class _CachedItems:
    """The cached images of one DataLoader (train or valid): per item, or whole batches gathered on the device."""

    def __init__(self, cache: ImageCache, index: list[int], targets: list[int], train: bool, device=None):
        import torch

        self.cache, self.index, self.targets, self.train = cache, index, targets, train
        self.split_idx = 0 if train else 1  # fastai applies the random augmentation on split 0 only
        self.pixels = torch.from_numpy(cache.pixels).to(device)
        self.offsets = torch.arange(cache.size, device=device)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, k: int):
        import torch
        from fastai.torch_core import TensorCategory, TensorImage

        # python's `random` is what fastai's Resize draws from, and fastai's set_seed seeds it
        crop = self.cache.crop(self.index[k], random if self.train else None)
        image = TensorImage(torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1))
        return image, TensorCategory(self.targets[k])

    def batch(self, ks: list[int]):
        """Items ``ks`` as one batch, cropped by indexing on the device (same random draws as item by item)."""
        import torch
        from fastai.torch_core import TensorCategory, TensorImage

        rand = random if self.train else None
        tops, lefts = zip(*(self.cache.crop_origin(self.index[k], rand) for k in ks))
        # one small host-to-device copy per batch, asynchronous from pinned memory: no wait for the GPU
        table = torch.tensor([[self.index[k] for k in ks], tops, lefts, [self.targets[k] for k in ks]])
        if self.pixels.is_cuda:
            table = table.pin_memory().to(self.pixels.device, non_blocking=True)
        which, top, left, labels = table
        rows = top[:, None] + self.offsets
        cols = left[:, None] + self.offsets
        images = self.pixels[which[:, None, None], rows[:, :, None], cols[:, None, :]]
        return TensorImage(images.permute(0, 3, 1, 2).contiguous()), TensorCategory(labels)


def _batched_dl_class():
    """A fastai TfmdDL whose batches are gathered from the cache in one indexing operation (built lazily)."""
    from fastai.data.core import TfmdDL
    from fastai.torch_core import to_detach

    class CachedDL(TfmdDL):
        def to_detach(self, b, cpu=True, gather=True):
            """Metrics stay on the device (fastai copies each batch's to the CPU: a host sync per batch)."""
            return to_detach(b, False, gather)

        def create_batches(self, samps):
            ks = list(samps)
            for i in range(0, len(ks), self.bs):
                chunk = ks[i:i + self.bs]
                if self.drop_last and len(chunk) < self.bs:
                    break
                yield self.dataset.batch(chunk)

    return CachedDL


def cached_dataloaders(dls, cache: ImageCache, paths: list[str], batched: bool = True):
    """DataLoaders like ``dls`` (same vocab, split, batch size, device and batch augmentation) that read the
    images from ``cache`` instead of decoding files; ``paths`` are the train then valid items of ``dls``.

    ``batched`` gathers each batch on the device at once (the cache is copied to the device); otherwise items
    are cropped one by one on the CPU as fastai does. Both draw the same crops for the same seed.
    """
    from fastai.data.core import DataLoaders, TfmdDL

    where = {p: i for i, p in enumerate(cache.paths)}
    missing = [p for p in paths if p not in where]
    if missing:
        raise LeukoError(f"image cache: {missing[0]} is not in the cache (built for another split?)")
    vocab = list(dls.vocab)
    cls = _batched_dl_class() if batched else TfmdDL
    loaders = []
    for dl, train in ((dls.train, True), (dls.valid, False)):
        items = [str(p) for p in dl.items]
        targets = [vocab.index(Path(p).parent.name) for p in items]
        data = _CachedItems(cache, [where[p] for p in items], targets, train, dls.device if batched else None)
        loader = cls(data, bs=dl.bs, shuffle=train, drop_last=train, after_batch=copy.deepcopy(dl.after_batch),
                     device=dls.device, num_workers=0, do_setup=False)
        loader._n_inp = 1
        loaders.append(loader)
    out = DataLoaders(*loaders, device=dls.device)
    out.vocab = dls.vocab
    return out
