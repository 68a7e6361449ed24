"""fastai DataLoaders that read the training and validation images from an image cache
(``leukoreport.data.image_cache``) instead of decoding files: per item, or whole batches gathered at once.

Only the learner's training sees these loaders: ``two_phase.train`` puts its file-based DataLoaders back before
the export, so no class of this module ends up in ``model.pkl``.
"""

from __future__ import annotations

import copy
import random
import warnings
from pathlib import Path

import numpy as np

from leukoreport.base.errors import LeukoError
from leukoreport.data import image_cache
from leukoreport.data.image_cache import ImageCache

__all__ = ["DEVICE_SHARE", "cached_dataloaders", "copy_in_slices"]

DEVICE_SHARE = 0.5  # the batched loader copies the cache to a CUDA device only when it takes at most this share
#                     of the device's free memory; otherwise batches are gathered from the memory map on the host


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
    return copy_in_slices(cache, pixels, device)


def copy_in_slices(cache: ImageCache, pixels, device):
    """``pixels`` copied to ``device`` in slices, so that the host never maps the whole file at once."""
    import torch

    out = torch.empty(pixels.shape, dtype=pixels.dtype, device=device)
    step = max(1, image_cache.RELEASE_BYTES // 3)
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
