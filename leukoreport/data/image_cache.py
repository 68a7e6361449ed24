"""Decode and resize the split's images once into a memory-mapped file, which training reads instead of JPEG
files (the fastai DataLoaders over it: ``leukoreport.training.cached_loader``).

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

import itertools
import json
import math
import mmap
import random
import struct
import tempfile
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd
from PIL import Image

from leukoreport.base.atomic_io import atomic_path
from leukoreport.base.errors import LeukoError
from leukoreport.data.images import to_rgb

__all__ = ["END", "HEADER", "ImageCache", "MAGIC", "RELEASE_BYTES", "TRAILER", "build_cache", "load_cache",
           "resized_shape", "save_cache", "split_cache"]

MAGIC = b"leukoreport image cache v1\n"
HEADER = 64  # bytes before the pixels
END = b"LKCACHE1"
TRAILER = struct.Struct("<Q8s")  # index length, END
RELEASE_BYTES = 64 * 2**20  # pixels read from the memory map before its pages are dropped from the process


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
    with atomic_path(out) as tmp, open(tmp, "wb") as fh:
        _write(fh, paths, int(size), images)
    return load_cache(out)


def _images(cache: ImageCache) -> Iterator[np.ndarray]:
    for i in range(len(cache)):
        yield cache.image(i)
        cache.read([i])


def save_cache(cache: ImageCache, out: str | Path) -> None:
    """Write ``cache`` to the file ``out`` atomically, one image at a time."""
    with atomic_path(out) as tmp, open(tmp, "wb") as fh:
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
