"""Decode and resize the split's images once into a memory-mapped file, and feed training from it instead of
JPEG files.

The cache holds each image resized (bilinear, like fastai's ``Resize``) so that its short side is ``size``;
training takes fastai ``Resize``'s square crop from it (random position on the training set, centred on the
validation set), then runs the unchanged fastai batch augmentation. Compared with fastai's per-epoch path the
only difference is the order of crop and resample (resize-then-crop instead of crop-then-resize).

The cache file (``cache{size}.bin``) holds every image at its own resized shape, one after the other, no
padding; it is written while the images are decoded (only one image, or a bounded window of them with several
processes, is in memory at a time) under a temporary name renamed at the end, and read with ``np.memmap``, so a
crop or a batch reads only the pages it needs. Layout:

* bytes 0-63: ``MAGIC``, zero-padded;
* the pixels: each image as uint8 ``height x width x 3`` in C order, in index order;
* the index: UTF-8 JSON ``{"size": int, "paths": [str], "shapes": [[height, width]]}``;
* the last 16 bytes: the index's length in bytes (little-endian uint64) and ``END``.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import mmap
import random
import struct
import tempfile
import warnings
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd
from PIL import Image

from leukoreport.data.images import to_rgb
from leukoreport.base.errors import LeukoError
from leukoreport.base.atomic_io import atomic_path

MAGIC = b"leukoreport image cache v1\n"
HEADER = 64  # bytes before the pixels
END = b"LKCACHE1"
TRAILER = struct.Struct("<Q8s")  # index length, END
RELEASE_BYTES = 64 * 2**20  # pixels read from the memory map before its pages are dropped from the process
DEVICE_SHARE = 0.5  # the batched loader copies the cache to a CUDA device only when it takes at most this share
#                     of the device's free memory; otherwise batches are gathered from the memory map on the host


@dataclass
class ImageCache:
    """Images resized to short side ``size``, stored one after the other without padding: image ``i`` is
    ``pixels[starts[i]:starts[i] + h * w]`` seen as ``(h, w, 3)``."""

    paths: list[str]
    size: int
    pixels: np.ndarray  # (total pixels, 3) uint8: usually a read-only np.memmap of the cache file
    shapes: np.ndarray  # (n, 2) int64: height, width of each image

    def __post_init__(self):
        counts = self.shapes[:, 0] * self.shapes[:, 1]
        self.starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)  # first pixel of each
        self._unreleased = 0

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def nbytes(self) -> int:
        return int(self.pixels.nbytes)

    def image(self, i: int) -> np.ndarray:
        """Image ``i`` as ``(h, w, 3)`` uint8 (a view: nothing is read until it is used)."""
        h, w = (int(v) for v in self.shapes[i])
        start = int(self.starts[i])
        return self.pixels[start:start + h * w].reshape(h, w, 3)

    def read(self, images) -> None:
        """Note that ``images`` were read; past ``RELEASE_BYTES`` read, drop the memory map's pages from this
        process (the OS page cache keeps them), so that its resident memory stays bounded instead of growing to
        the whole file over an epoch."""
        self._unreleased += 3 * int((self.shapes[images, 0] * self.shapes[images, 1]).sum())
        if self._unreleased >= RELEASE_BYTES:
            self.release()

    def release(self) -> None:
        """Drop the pages of the memory map from this process (no-op for pixels in memory); reads still work."""
        self._unreleased = 0
        mapped = getattr(self.pixels, "_mmap", None)
        if mapped is not None and hasattr(mmap, "MADV_DONTNEED"):
            mapped.madvise(mmap.MADV_DONTNEED)

    def crop_origin(self, i: int, rand: random.Random | None) -> tuple[int, int]:
        """Top-left corner of fastai ``Resize``'s square crop of image ``i``: drawn from ``rand``, else centred."""
        h, w = (int(v) for v in self.shapes[i])
        fy, fx = (rand.random(), rand.random()) if rand is not None else (0.5, 0.5)
        return round((h - self.size) * fy), round((w - self.size) * fx)

    def crop(self, i: int, rand: random.Random | None) -> np.ndarray:
        """fastai ``Resize`` crop of image ``i``: a size x size square, random position when ``rand`` is given."""
        top, left = self.crop_origin(i, rand)
        return self.image(i)[top:top + self.size, left:left + self.size]


def resized_shape(width: int, height: int, size: int) -> tuple[int, int]:
    """(height, width) after resizing so that the short side is ``size`` (aspect ratio kept)."""
    scale = size / min(width, height)
    return max(size, round(height * scale)), max(size, round(width * scale))


def _load(args: tuple[str, int]) -> np.ndarray:
    path, size = args
    try:
        with Image.open(path) as img:
            img = to_rgb(img)  # the modes data.to_rgb accepts, refusing 16-bit and float
        h, w = resized_shape(img.width, img.height, size)
        return np.asarray(img.resize((w, h), Image.BILINEAR), dtype=np.uint8)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise LeukoError(f"{path}: cannot decode image for the cache ({exc})") from None


def _load_chunk(jobs: list[tuple[str, int]]) -> list[np.ndarray]:
    return [_load(j) for j in jobs]


def _decoded(jobs: list[tuple[str, int]], processes: int) -> Iterator[np.ndarray]:
    """The resized images in order. With several processes at most ``2 * processes`` chunks are in flight, so
    memory holds a bounded window of images, never the whole set."""
    if processes <= 1:
        yield from map(_load, jobs)
        return
    per_chunk = max(1, min(32, math.ceil(len(jobs) / (4 * processes))))
    chunks = (jobs[i:i + per_chunk] for i in range(0, len(jobs), per_chunk))
    with ProcessPoolExecutor(processes) as pool:
        pending = deque(pool.submit(_load_chunk, c) for c in itertools.islice(chunks, 2 * processes))
        while pending:
            arrays = pending.popleft().result()
            for c in itertools.islice(chunks, 1):
                pending.append(pool.submit(_load_chunk, c))
            yield from arrays


def _write(fh: BinaryIO, paths: list[str], size: int, images: Iterable[np.ndarray]) -> None:
    """Write the cache of ``images`` (one ``(h, w, 3)`` uint8 array per path, consumed one at a time) to ``fh``."""
    fh.write(MAGIC.ljust(HEADER, b"\0"))
    shapes = []
    for image in images:
        fh.write(np.ascontiguousarray(image, dtype=np.uint8).data)
        shapes.append([int(image.shape[0]), int(image.shape[1])])
    if len(shapes) != len(paths):
        raise LeukoError(f"image cache: {len(shapes)} images for {len(paths)} paths")
    index = json.dumps({"size": int(size), "paths": paths, "shapes": shapes}).encode()
    fh.write(index)
    fh.write(TRAILER.pack(len(index), END))


def _read(fh: BinaryIO, name: str) -> ImageCache:
    """The cache in the open binary file ``fh``, pixels memory-mapped; LeukoError naming ``name`` if broken."""

    def broken(why: str) -> LeukoError:
        return LeukoError(f"{name}: not an image cache or truncated ({why}); delete it and rebuild it")

    total = fh.seek(0, 2)
    if total < HEADER + TRAILER.size:
        raise broken(f"{total} bytes")
    fh.seek(0)
    if fh.read(len(MAGIC)) != MAGIC:
        raise broken("no cache header")
    fh.seek(total - TRAILER.size)
    n_index, end = TRAILER.unpack(fh.read(TRAILER.size))
    n_pixel_bytes = total - TRAILER.size - n_index - HEADER
    if end != END or n_pixel_bytes < 0:
        raise broken("no index at the end")
    fh.seek(HEADER + n_pixel_bytes)
    try:
        index = json.loads(fh.read(n_index).decode())
        paths, size = [str(p) for p in index["paths"]], int(index["size"])
        shapes = np.array(index["shapes"], dtype=np.int64).reshape(-1, 2)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise broken(f"bad index: {exc}") from None
    if not paths or len(paths) != len(shapes) or shapes.min() < size:
        raise broken(f"bad index: {len(paths)} paths, {len(shapes)} shapes, size {size}")
    n_pixels = int((shapes[:, 0] * shapes[:, 1]).sum())
    if n_pixel_bytes != 3 * n_pixels:
        raise broken(f"{n_pixel_bytes} bytes of pixels where the index needs {3 * n_pixels}")
    pixels = np.memmap(fh, dtype=np.uint8, mode="r", offset=HEADER, shape=(n_pixels, 3))
    return ImageCache(paths, size, pixels, shapes)


def build_cache(paths: Iterable[str], size: int, processes: int = 1, out: str | Path | None = None) -> ImageCache:
    """Decode and resize every image once (in ``processes`` worker processes when > 1), writing each to the
    cache file ``out`` as it comes (atomically), and return the cache memory-mapped from it. Without ``out``
    the file is an anonymous temporary file, deleted when the cache is no longer used."""
    paths = [str(p) for p in paths]
    if not paths:
        raise LeukoError("image cache: no images")
    images = _decoded([(p, int(size)) for p in paths], processes)
    if out is None:
        with tempfile.TemporaryFile(prefix="leukoreport-cache-") as fh:
            _write(fh, paths, int(size), images)
            return _read(fh, "temporary image cache")
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as fh:
            _write(fh, paths, int(size), images)
    return load_cache(out)


def _images(cache: ImageCache) -> Iterator[np.ndarray]:
    for i in range(len(cache)):
        yield cache.image(i)
        cache.read([i])


def save_cache(cache: ImageCache, out: str | Path) -> None:
    """Write ``cache`` to the file ``out`` atomically, one image at a time."""
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as fh:
            _write(fh, cache.paths, cache.size, _images(cache))


def load_cache(path: str | Path) -> ImageCache:
    """Memory-map a cache written by ``build_cache``; LeukoError naming the file when it is missing or broken."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            return _read(fh, path.as_posix())
    except FileNotFoundError:
        raise LeukoError(f"{path.as_posix()}: image cache not found") from None
    except OSError as exc:
        raise LeukoError(f"{path.as_posix()}: cannot read the image cache ({exc})") from None


def split_cache(split: pd.DataFrame, size: int, processes: int = 1, out: str | Path | None = None) -> ImageCache:
    """The cache of the train and valid rows of a split table, in split order (written to ``out`` if given)."""
    rows = split[split["split"].isin(["train", "valid"])]
    return build_cache(list(rows["path"]), size, processes, out)


def _batch_pixels(cache: ImageCache, device):
    """The cache's pixels as a ``(total pixels, 3)`` uint8 tensor for the batched loader: copied to a CUDA
    device when they take at most ``DEVICE_SHARE`` of its free memory, else the host memory map itself."""
    import torch

    with warnings.catch_warnings():  # read-only memory map: torch warns, and nothing ever writes to it
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        pixels = torch.from_numpy(cache.pixels)
    device = torch.device(device if device is not None else "cpu")
    if device.type != "cuda" or cache.nbytes > DEVICE_SHARE * torch.cuda.mem_get_info(device)[0]:
        return pixels
    return _copied(cache, pixels, device)


def _copied(cache: ImageCache, pixels, device):
    """``pixels`` copied to ``device`` in slices, so that the host never maps the whole file at once."""
    import torch

    out = torch.empty(pixels.shape, dtype=pixels.dtype, device=device)
    step = max(1, RELEASE_BYTES // 3)
    for start in range(0, len(pixels), step):
        out[start:start + step].copy_(pixels[start:start + step])
        cache.release()
    return out


class _CachedItems:
    """The cached images of one DataLoader (train or valid): per item, or whole batches gathered at once (on
    the device when the cache was copied there, else from the memory map on the host)."""

    def __init__(self, cache: ImageCache, index: list[int], targets: list[int], train: bool, pixels=None):
        import torch

        self.cache, self.index, self.targets, self.train = cache, index, targets, train
        self.split_idx = 0 if train else 1  # fastai applies the random augmentation on split 0 only
        self.pixels = pixels  # from _batch_pixels, shared by the train and valid loaders; None: per item only
        if pixels is not None:
            self.offsets = torch.arange(cache.size, device=pixels.device)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, k: int):
        import torch
        from fastai.torch_core import TensorCategory, TensorImage

        # python's `random` is what fastai's Resize draws from, and fastai's set_seed seeds it
        crop = self.cache.crop(self.index[k], random if self.train else None)
        image = TensorImage(torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1))
        self.cache.read([self.index[k]])
        return image, TensorCategory(self.targets[k])

    def batch(self, ks: list[int]):
        """Items ``ks`` as one batch, cropped by one indexing operation (same random draws as item by item)."""
        import torch
        from fastai.torch_core import TensorCategory, TensorImage

        rand = random if self.train else None
        which = [self.index[k] for k in ks]
        tops, lefts = zip(*(self.cache.crop_origin(i, rand) for i in which))
        starts, widths = self.cache.starts[which].tolist(), self.cache.shapes[which, 1].tolist()
        table = torch.tensor([starts, widths, tops, lefts, [self.targets[k] for k in ks]], dtype=torch.int64)
        if self.pixels.is_cuda:
            # one small host-to-device copy per batch, asynchronous from pinned memory: no wait for the GPU
            table = table.pin_memory().to(self.pixels.device, non_blocking=True)
        start, width, top, left, labels = table
        rows = top[:, None] + self.offsets  # (batch, size)
        cols = left[:, None] + self.offsets
        where = start[:, None, None] + rows[:, :, None] * width[:, None, None] + cols[:, None, :]
        images = self.pixels[where]  # (batch, size, size, 3)
        if not self.pixels.is_cuda:
            self.cache.read(which)
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

    ``batched`` gathers each batch at once (on the device when the cache fits there, see ``_batch_pixels``);
    otherwise items are cropped one by one on the CPU as fastai does. Both draw the same crops for the same seed.
    """
    from fastai.data.core import DataLoaders, TfmdDL

    where = {p: i for i, p in enumerate(cache.paths)}
    missing = [p for p in paths if p not in where]
    if missing:
        raise LeukoError(f"image cache: {missing[0]} is not in the cache (built for another split?)")
    vocab = list(dls.vocab)
    cls = _batched_dl_class() if batched else TfmdDL
    pixels = _batch_pixels(cache, dls.device) if batched else None
    loaders = []
    for dl, train in ((dls.train, True), (dls.valid, False)):
        items = [str(p) for p in dl.items]
        targets = [vocab.index(Path(p).parent.name) for p in items]
        data = _CachedItems(cache, [where[p] for p in items], targets, train, pixels)
        loader = cls(data, bs=dl.bs, shuffle=train, drop_last=train, after_batch=copy.deepcopy(dl.after_batch),
                     device=dls.device, num_workers=0, do_setup=False)
        loader._n_inp = 1
        loaders.append(loader)
    out = DataLoaders(*loaders, device=dls.device)
    out.vocab = dls.vocab
    return out
