"""Grad-CAM (Selvaraju et al. 2017) on the last convolutional block: does a prediction rest on the cell or
on the red cells and background around it?"""

from __future__ import annotations

import math
import numbers
from contextlib import contextmanager
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402

from leukoreport.base.errors import LeukoError  # noqa: E402
from leukoreport.report.figures.common import STYLE, THUMB_PX, _save, _short_name, _thumbnail, top_loss_rows  # noqa: E402
from leukoreport.stats.metrics import misclassified  # noqa: E402

CAPTION_PT = 11.5  # about 7.5 pt on a 10 in page scaled to A4's text width


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


def overlay(path, cam: np.ndarray, alpha: float = 0.45) -> Image.Image:
    """The RGB image at `path` with a jet colour map of `cam` blended on top at opacity `alpha`."""
    try:
        with Image.open(path) as img:
            rgb = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    except (OSError, ValueError) as exc:
        raise LeukoError(f"{path}: cannot open image: {exc}") from None
    if cam.shape != rgb.shape[:2]:
        raise LeukoError(f"{path}: map of shape {cam.shape} for an image of {rgb.shape[1]}x{rgb.shape[0]}")
    heat = matplotlib.colormaps["jet"](np.clip(cam, 0.0, 1.0))[..., :3]
    blend = (1.0 - alpha) * rgb + alpha * heat
    return Image.fromarray(np.uint8(np.round(np.clip(blend, 0.0, 1.0) * 255)))


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


def _caption(row: pd.Series, limit: int) -> str:
    """'true: X · pred: Y (p%)' of one row, on two lines (at the dot) when longer than `limit` characters."""
    p = float(row[f"prob_{row['prediction']}"])
    true, pred = f"true: {row['label']}", f"pred: {row['prediction']} ({p:.0%})"
    return f"{true} \u00b7 {pred}" if len(true) + len(pred) + 3 <= limit else f"{true} \u00b7\n{pred}"


def _name_line(row: pd.Series, has_why: bool) -> str:
    """The shortened file name, after the ``why`` of the row when there is one."""
    name = _short_name(row["path"], 28)
    return f"{row['why']} \u00b7 {name}" if has_why and pd.notna(row["why"]) else name


def plot_saliency_gallery(rows: pd.DataFrame, maps: list[np.ndarray], out, root=".", title: str = "",
                          columns: int = 3) -> None:
    """One page: per row the plain thumbnail and its Grad-CAM overlay side by side, captioned with true
    label, prediction and its probability, the file name below; `columns` pairs per line."""
    missing = [c for c in ("path", "label", "prediction") if c not in rows.columns]
    if missing:
        raise LeukoError(f"saliency rows: missing column(s) {missing}")
    if len(rows) != len(maps):
        raise LeukoError(f"saliency gallery: {len(rows)} rows but {len(maps)} maps")
    if isinstance(columns, bool) or not isinstance(columns, numbers.Integral) or columns < 1:
        raise LeukoError(f"saliency gallery: columns must be a positive integer, got {columns!r}")
    for c in set(rows["prediction"]):
        if f"prob_{c}" not in rows.columns:
            raise LeukoError(f"saliency rows: missing column 'prob_{c}'")
    root = Path(root)
    with plt.rc_context(STYLE):
        if rows.empty:
            fig = plt.figure(figsize=(4.5, 1.0))
            fig.text(0.5, 0.5, "No images to explain", ha="center", va="center", fontsize=13)
            _save(fig, out)
            return
        ncols = min(columns, len(rows))
        nrows = math.ceil(len(rows) / ncols)
        pair_w = 10.0 / ncols if ncols > 1 else 4.0
        limit = int(pair_w * 72 / (0.56 * CAPTION_PT))  # characters of a caption line that fit
        captions = [_caption(row, limit) for _, row in rows.iterrows()]
        lines = max(c.count("\n") + 1 for c in captions)
        pair_h = pair_w / 2 + 0.3 + 0.22 * lines
        fig = plt.figure(figsize=(pair_w * ncols, pair_h * nrows + (0.45 if title else 0.1)),
                         layout="constrained")
        subfigs = np.atleast_1d(fig.subfigures(nrows, ncols, wspace=0.03, hspace=0.03)).reshape(-1)
        for sub in subfigs[len(rows):]:
            sub.set_facecolor("none")
        has_why = "why" in rows.columns
        for sub, (_, row), cam, caption in zip(subfigs, rows.iterrows(), maps, captions):
            path = root / str(row["path"])
            shown = overlay(path, cam)
            shown.thumbnail((THUMB_PX, THUMB_PX))
            right = row["label"] == row["prediction"]
            sub.set_facecolor("0.94" if right else "#f6e4e4")
            for ax, image in zip(sub.subplots(1, 2, gridspec_kw={"wspace": 0.03}), (_thumbnail(path), shown)):
                ax.axis("off")
                ax.imshow(image)
            sub.suptitle(caption, fontsize=CAPTION_PT, color="black" if right else "darkred")
            sub.supxlabel(_name_line(row, has_why), fontsize=CAPTION_PT - 1, color="0.3")
        if title:
            fig.suptitle(title, fontsize=14)
        _save(fig, out)


def centre_share(cam: np.ndarray) -> float:
    """Share of a map's mass in the central box of half its width and height (0.25 for a uniform map, NaN if 0)."""
    h, w = cam.shape
    total = float(cam.sum())
    if total <= 0:
        return float("nan")
    return float(cam[h // 4:h - h // 4, w // 4:w - w // 4].sum()) / total
