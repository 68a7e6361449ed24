"""Grad-CAM (Selvaraju et al. 2017) on the last convolutional block: does a prediction rest on the cell or
on the red cells and background around it?"""

from __future__ import annotations

import numbers
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from leukoreport.base.errors import LeukoError
from leukoreport.stats.error_rows import top_loss_rows
from leukoreport.stats.metrics import misclassified, prediction_classes, read_predictions

__all__ = ["cam_batch", "centre_share", "class_indices", "crop_box", "gradcam_maps", "gradcam_table",
           "saliency_rows"]


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) of the image at `path`, read from its header; LeukoError naming it if unreadable."""
    try:
        with Image.open(path) as img:
            return img.size
    except (OSError, ValueError) as exc:
        raise LeukoError(f"{path}: cannot open image: {exc}") from None


def _resize_size(learn) -> int:
    """The side of the square fastai ``Resize`` (method Crop) the learner's item transforms end in."""
    from fastai.vision.augment import Resize, ResizeMethod

    resizes = [t for t in learn.dls.after_item.fs if isinstance(t, Resize)]
    if not resizes or resizes[-1].method != ResizeMethod.Crop:
        raise LeukoError("saliency: the learner has no fastai Resize item transform with method Crop")
    height, width = resizes[-1].size
    if height != width:
        raise LeukoError(f"saliency: Resize to {width}x{height} is not square")
    if height <= 32:  # ResNet's stride 32 leaves one cell, which Grad-CAM's min-max scaling maps to 0
        raise LeukoError(f"saliency: images of {height} px give a 1x1 last block; Grad-CAM needs more than 32 px")
    return int(height)


def crop_box(width: int, height: int, size: int) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the square fastai ``Resize(size)`` (method Crop) takes at inference:
    the same arithmetic as ``Resize.encodes`` with the valid-time centre (0.5, 0.5)."""
    m = width / size if width / size < height / size else height / size
    side = int(m * size)
    left, top = int(0.5 * (width - side)), int(0.5 * (height - side))
    return max(left, 0), max(top, 0), min(left + side, width), min(top + side, height)


@contextmanager
def _frozen_state(model):
    """Eval mode with no parameter requiring grad; mode, requires_grad flags and .grad restored on exit."""
    params = list(model.parameters())
    saved = [(p.requires_grad, p.grad) for p in params]
    modes = [(m, m.training) for m in model.modules()]
    try:
        for p in params:
            p.requires_grad_(False)
        model.eval()
        yield model
    finally:
        for p, (flag, grad) in zip(params, saved):
            p.requires_grad_(flag)
            p.grad = grad
        for m, training in modes:
            m.train(training)


def cam_batch(learn, x, targets: list[int]) -> np.ndarray:
    """Grad-CAM maps (n, size, size) in [0, 1] of a normalised batch `x`, class `targets[i]` for image i."""
    import torch
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model = learn.model
    with _frozen_state(model), torch.enable_grad():
        # a plain tensor (grad-cam cannot release fastai TensorImage views); gradients flow from it alone
        inputs = x.as_subclass(torch.Tensor).detach().clone().requires_grad_(True)
        cam = GradCAM(model=model, target_layers=[model[0][-1]])
        try:  # not `with`: GradCAM.__exit__ swallows an IndexError
            maps = cam(input_tensor=inputs, targets=[ClassifierOutputTarget(int(t)) for t in targets])
        finally:
            cam.activations_and_grads.release()  # hooks off
    return np.asarray(maps, dtype=np.float32)


def _onto_image(cam: np.ndarray, width: int, height: int, size: int) -> np.ndarray:
    """A size x size map resized (bilinear) onto the image's centre-crop square, zero outside it."""
    import torch
    import torch.nn.functional as F

    left, top, right, bottom = crop_box(width, height, size)
    square = F.interpolate(torch.from_numpy(cam)[None, None], size=(bottom - top, right - left),
                           mode="bilinear", align_corners=False)[0, 0].numpy()
    full = np.zeros((height, width), dtype=np.float32)
    full[top:bottom, left:right] = np.clip(square, 0.0, 1.0)
    return full


def gradcam_maps(learn, paths: list[Path], targets: list[int], batch_size: int = 16) -> list[np.ndarray]:
    """One Grad-CAM map per image for class ``targets[i]``, float32 in [0, 1] of the image's (height, width),
    zero outside the centre crop the model sees; the learner is left as it was."""
    paths = [Path(p) for p in paths]
    if len(paths) != len(targets):
        raise LeukoError(f"saliency: {len(paths)} images but {len(targets)} targets")
    n_classes = len(learn.dls.vocab)
    for path, t in zip(paths, targets):
        if isinstance(t, bool) or not isinstance(t, numbers.Integral) or not 0 <= t < n_classes:
            raise LeukoError(f"{path}: target {t!r} is not a class index of the model (0..{n_classes - 1})")
    sizes = [_image_size(p) for p in paths]
    if not paths:
        return []
    size = _resize_size(learn)
    dl = learn.dls.test_dl(paths, bs=batch_size, num_workers=0)
    maps: list[np.ndarray] = []
    for batch in dl:
        x = batch[0]
        first = len(maps)
        cams = cam_batch(learn, x, list(targets[first:first + len(x)]))
        for cam, (width, height) in zip(cams, sizes[first:first + len(x)]):
            maps.append(_onto_image(cam, width, height, size))
    return maps


def class_indices(learn, names: list[str]) -> list[int]:
    """Indices in the learner's vocabulary of the class `names` (e.g. ``saliency_rows(...)['target']``)."""
    vocab = [str(c) for c in learn.dls.vocab]
    unknown = [n for n in names if str(n) not in vocab]
    if unknown:
        raise LeukoError(f"class '{unknown[0]}': not a class of the model ({', '.join(vocab)})")
    return [vocab.index(str(n)) for n in names]


def saliency_rows(pred: pd.DataFrame, errors_limit: int, top_losses: int) -> pd.DataFrame:
    """The images to explain: the misclassified (most confident first, at most `errors_limit`), then the
    `top_losses` highest losses not already among them; ``why`` says which, ``target`` is the prediction."""
    missing = [c for c in ("path", "label", "prediction", "loss") if c not in pred.columns]
    if missing:
        raise LeukoError(f"predictions: missing column(s) {missing}")
    for name, value in (("errors_limit", errors_limit), ("top_losses", top_losses)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
            raise LeukoError(f"saliency: {name} must be a non-negative integer, got {value!r}")
    for c in set(pred["prediction"]) | set(pred["label"]):
        if f"prob_{c}" not in pred.columns:
            raise LeukoError(f"predictions: missing column 'prob_{c}'")
    errors = misclassified(pred).head(errors_limit).assign(why="error")
    losses = top_loss_rows(pred, top_losses).assign(why="top loss") if top_losses and len(pred) else None
    rows = pd.concat([errors, losses]) if losses is not None else errors
    rows = rows.drop_duplicates(subset="path", keep="first").reset_index(drop=True)
    rows = rows.drop(columns=[c for c in ("confidence", "p_true") if c in rows.columns])
    return rows.assign(target=rows["prediction"])


def centre_share(cam: np.ndarray) -> float:
    """Share of a map's mass in the central box of half its width and height (0.25 for a uniform map, NaN if 0)."""
    h, w = cam.shape
    total = float(cam.sum())
    if total <= 0:
        return float("nan")
    return float(cam[h // 4:h - h // 4, w // 4:w - w // 4].sum()) / total


def gradcam_table(learn, predictions: str | Path, images: int,
                  top_losses: int) -> tuple[pd.DataFrame, list[np.ndarray]]:
    """The saliency rows of a predictions.csv (at most `images`: errors, then top losses) with their Grad-CAM maps
    and ``cam_centre_share``: the table and maps the evaluate job writes as saliency.csv and draws."""
    classes = prediction_classes(predictions)
    rows = saliency_rows(read_predictions(predictions, classes), images, min(images, top_losses)).head(images)
    maps = gradcam_maps(learn, [Path(p) for p in rows["path"]], [classes.index(c) for c in rows["target"]])
    return rows.assign(cam_centre_share=[centre_share(m) for m in maps]), maps
