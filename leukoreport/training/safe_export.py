"""Weights-only export of a trained learner: ``model.safetensors`` (its state dict, through the safetensors library)
and ``model.json`` (classes, image size, transforms, normalisation, hashes), which together rebuild the fastai
Learner without unpickling anything.

The rebuilt learner has the same model (fastai ``create_vision_model`` on its ``architecture``, vision_learner's
head, the BatchNorm layers replaced as its ``norm`` says: ``training.normalisation.set_norm``), the
same item and batch transforms (the training augmentation included, so ``Learner.tta`` draws the same crops) and
the same loss, hence the same softmax in ``get_preds``. ``export_safe`` rebuilds it once and refuses to write a
``model.json`` that would not describe the learner exactly (``learner_signature``).
"""

from __future__ import annotations

import functools
import inspect
import tempfile
from enum import Enum
from numbers import Integral, Real
from pathlib import Path
from typing import Any

from leukoreport.base.atomic_io import atomic_path, write_json
from leukoreport.base.checksums import sha256_file, sha256_json
from leukoreport.base.errors import LeukoError
from leukoreport.training.normalisation import ARCHITECTURES, DEFAULT_NORM, NORMS, arch_function, set_norm
from leukoreport.training.stain_jitter import strip_leukoreport

__all__ = ["ARCHITECTURE", "AUGMENTATION_KEYS", "FILE_KEYS", "FORMAT", "FORMAT_VERSION", "check_spec", "describe",
           "export_safe", "learner_from_spec", "learner_signature", "model_spec"]

FORMAT = "leukoreport-safe-model"
FORMAT_VERSION = 1
ARCHITECTURE = "resnet18"  # the paper's backbone; model.json's "architecture" is one of ARCHITECTURES
# fastai ``aug_transforms`` arguments written to model.json (xtra_tfms excluded: code is never written)
AUGMENTATION_KEYS = ("mult", "do_flip", "flip_vert", "max_rotate", "min_zoom", "max_zoom", "max_lighting",
                     "max_warp", "p_affine", "p_lighting", "size", "mode", "pad_mode", "align_corners", "batch",
                     "min_scale")
RESIZE_METHODS = ("crop", "pad", "squish")
PAD_MODES = ("zeros", "border", "reflection")
# attributes a transform sets while it runs (its last draw), not part of what it does
RUNTIME_STATE = frozenset({"__signature__", "change", "coeffs", "cp_size", "do", "mat", "orig_pts", "pcts", "targ_pts",
                           "tl"})
SPEC_KEYS = ("format", "format_version", "architecture", "norm", "n_out", "classes", "image_size", "item_resize",
             "normalize", "augmentation", "num_workers")
FILE_KEYS = ("weights_file", "weights_sha256", "recipe_hash")  # added once the weights are written


def export_safe(learn, weights_path: str | Path, json_path: str | Path, recipe: dict) -> dict:
    """Write ``learn``'s weights to ``weights_path`` (safetensors) and its description to ``json_path``, each
    atomically; returns ``{"weights_sha256", "recipe_hash"}`` (hex SHA-256 of the weights file and of the
    canonical JSON of ``recipe``). LeukoError when model.json could not rebuild ``learn`` exactly."""
    import fastai
    import safetensors
    import torch
    from safetensors.torch import save_file

    weights_path, json_path = Path(weights_path), Path(json_path)
    strip_leukoreport(learn.dls)  # the stain jitter is train-only, as in model.pkl
    spec = model_spec(learn)
    state = {key: value.detach().cpu().clone().contiguous() for key, value in learn.model.state_dict().items()}
    want, got = learner_signature(learn), learner_signature(learner_from_spec(spec, state, json_path.as_posix()))
    differ = [key for key in want if want[key] != got[key]]
    if differ:
        raise LeukoError(f"{json_path.as_posix()}: model.json would not rebuild this learner exactly "
                         f"({', '.join(differ)} differ)")
    with atomic_path(weights_path) as tmp:
        save_file(state, str(tmp), metadata={"format": FORMAT, "format_version": str(FORMAT_VERSION)})
        weights_sha256 = sha256_file(tmp)
    hashes = {"weights_sha256": weights_sha256, "recipe_hash": sha256_json(recipe)}
    spec.update(weights_file=weights_path.name, **hashes,
                versions={"fastai": fastai.__version__, "torch": torch.__version__,
                          "safetensors": safetensors.__version__})
    write_json(spec, json_path)
    return hashes


def model_spec(learn) -> dict:
    """What model.json holds besides the file name and hashes: classes, outputs, item resize, normalisation (null
    unless the learner normalises: vision_learner adds it only when pretrained), augmentation, loader workers."""
    classes = [str(c) for c in learn.dls.vocab]
    n_out = _n_out(learn.model)
    if n_out != len(classes):
        raise LeukoError(f"learner: {n_out} outputs for {len(classes)} classes")
    valid = learn.dls.valid
    resize = _item_resize(valid.after_item.fs)
    normalize, augmentation = _batch_transforms(valid.after_batch.fs)
    arch, norm = model_layers(learn.model)
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "architecture": arch, "norm": norm, "n_out": n_out,
            "classes": classes, "image_size": resize["size"], "item_resize": resize, "normalize": normalize,
            "augmentation": augmentation, "num_workers": int(valid.fake_l.num_workers)}


def model_layers(model) -> tuple[str, str]:
    """(architecture, norm) of a fastai vision model: the norm from its normalisation layers, the architecture by
    rebuilding each candidate's body without weights and comparing the layers (``repr``); LeukoError when none
    matches."""
    import torch
    from fastai.vision.all import create_body
    from torchvision.ops.misc import FrozenBatchNorm2d

    kinds = {type(m) for m in model.modules()}
    norm = "group" if torch.nn.GroupNorm in kinds else "frozen" if FrozenBatchNorm2d in kinds else DEFAULT_NORM
    body = repr(model[0]) if isinstance(model, torch.nn.Sequential) and len(model) == 2 else None
    for arch in ARCHITECTURES:
        if body == repr(set_norm(create_body(arch_function(arch)(weights=None), pretrained=False), norm)):
            return arch, norm
    raise LeukoError(f"learner: the model's body is none of {', '.join(ARCHITECTURES)} (norm {norm}); "
                     "model.json cannot describe it")


def _n_out(model) -> int:
    """Outputs of the model's last linear layer."""
    import torch

    linear = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    if not linear:
        raise LeukoError("learner: the model has no linear output layer")
    return int(linear[-1].out_features)


def _item_resize(transforms) -> dict:
    """The ``Resize`` item transform's settings; LeukoError for any item transform but Resize and ToTensor."""
    resize = None
    for tfm in transforms:
        name = type(tfm).__name__
        if name == "Resize":
            resize = {"size": [int(s) for s in tfm.size], "method": str(tfm.method), "pad_mode": str(tfm.pad_mode),
                      "resamples": [int(r) for r in tfm.resamples]}
        elif name != "ToTensor":
            raise LeukoError(f"learner: item transform {name} cannot be written to model.json")
    if resize is None:
        raise LeukoError("learner: no Resize item transform to write to model.json")
    return resize


def _batch_transforms(transforms) -> tuple[dict | None, dict]:
    """(normalisation or None, the ``aug_transforms`` arguments) read from a learner's batch transforms."""
    from fastai.vision.all import AffineCoordTfm, IntToFloatTensor, LightingTfm, Normalize, RandomResizedCropGPU

    aug: dict[str, Any] = {"mult": 1.0, "do_flip": False, "flip_vert": False, "max_rotate": 0.0, "min_zoom": 1.0,
                           "max_zoom": 1.0, "max_lighting": 0.0, "max_warp": 0.0, "p_affine": 0.75,
                           "p_lighting": 0.75, "size": None, "mode": "bilinear", "pad_mode": "reflection",
                           "align_corners": True, "batch": False, "min_scale": 1.0}
    normalize = None
    for tfm in transforms:
        if isinstance(tfm, AffineCoordTfm):
            aug.update(size=_size(tfm.size), mode=str(tfm.mode), pad_mode=str(tfm.pad_mode),
                       align_corners=bool(tfm.align_corners))
            for f in tfm.aff_fs:
                _affine_args(f, aug)
            for coord in tfm.coord_fs:
                if type(coord).__name__ != "_WarpCoord":
                    raise LeukoError(f"learner: coordinate transform {type(coord).__name__} cannot be written")
                aug.update(max_warp=float(coord.magnitude), p_affine=float(coord.p), batch=bool(coord.batch))
        elif isinstance(tfm, LightingTfm):
            for f in tfm.fs:
                aug.update(max_lighting=float(f.max_lighting), p_lighting=float(f.p), batch=bool(f.batch))
        elif isinstance(tfm, RandomResizedCropGPU):
            aug.update(min_scale=float(tfm.min_scale), size=_size(tfm.size))
        elif isinstance(tfm, Normalize):
            normalize = {"mean": [float(v) for v in tfm.mean.flatten()], "std": [float(v) for v in tfm.std.flatten()]}
        elif not isinstance(tfm, IntToFloatTensor):
            raise LeukoError(f"learner: batch transform {type(tfm).__name__} cannot be written to model.json")
    return normalize, aug


def _size(size) -> list[int] | None:
    """A transform's size as a JSON list (None stays None)."""
    return None if size is None else [int(s) for s in size]


def _affine_args(f, aug: dict) -> None:
    """Fold one affine matrix function of an ``AffineCoordTfm`` into the ``aug_transforms`` arguments."""
    if not isinstance(f, functools.partial):
        raise LeukoError(f"learner: affine transform {f!r} cannot be written to model.json")
    name, kw = f.func.__name__, f.keywords
    if name in ("dihedral_mat", "flip_mat"):
        aug.update(do_flip=True, flip_vert=name == "dihedral_mat")
    elif name == "rotate_mat":
        aug.update(max_rotate=float(kw["max_deg"]), p_affine=float(kw["p"]))
    elif name == "zoom_mat":
        aug.update(min_zoom=float(kw["min_zoom"]), max_zoom=float(kw["max_zoom"]), p_affine=float(kw["p"]))
    else:
        raise LeukoError(f"learner: affine transform {name} cannot be written to model.json")
    aug["batch"] = bool(kw.get("batch", False))


def check_spec(spec: Any, where: str, written: bool = True) -> dict:
    """``spec`` (a loaded model.json) if it is one this version can rebuild; else one-line LeukoError naming the
    file and the key. ``written``: the file keys (weights file name and hashes) are required too."""
    if not isinstance(spec, dict):
        raise LeukoError(f"{where}: expected a JSON object")
    missing = [key for key in (*SPEC_KEYS, *(FILE_KEYS if written else ())) if key not in spec and key != "norm"]
    if missing:
        raise LeukoError(f"{where}: key {missing[0]} missing (not a model.json written by leukoreport)")
    expected = {"format": FORMAT, "format_version": FORMAT_VERSION}
    for key, value in expected.items():
        if spec[key] != value:
            raise LeukoError(f"{where}: key {key}: expected {value!r}, got {spec[key]!r}")
    for key, allowed in (("architecture", ARCHITECTURES), ("norm", NORMS)):
        if spec.get(key, DEFAULT_NORM) not in allowed:  # "norm" absent: a model.json written before it existed
            raise LeukoError(f"{where}: key {key}: expected one of {', '.join(map(repr, allowed))}, "
                             f"got {spec[key]!r}")
    classes = spec["classes"]
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        raise LeukoError(f"{where}: key classes: expected a non-empty list of names")
    if spec["n_out"] != len(classes):
        raise LeukoError(f"{where}: key n_out: {spec['n_out']!r} is not the number of classes ({len(classes)})")
    _check_resize(spec["item_resize"], where)
    _check_augmentation(spec["augmentation"], where)
    _check_normalize(spec["normalize"], where)
    workers = spec["num_workers"]
    if isinstance(workers, bool) or not isinstance(workers, Integral) or workers < 0:
        raise LeukoError(f"{where}: key num_workers: {workers!r} is not an integer >= 0")
    if not written:
        return spec
    name = spec["weights_file"]
    if not isinstance(name, str) or not name or Path(name).name != name:
        raise LeukoError(f"{where}: key weights_file: {name!r} is not a file name")
    sha = spec["weights_sha256"]
    if not isinstance(sha, str) or len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise LeukoError(f"{where}: key weights_sha256: {sha!r} is not a hex SHA-256")
    return spec


def _is_size(value: Any) -> bool:
    """A list of two positive integers."""
    return (isinstance(value, list) and len(value) == 2
            and all(isinstance(v, Integral) and not isinstance(v, bool) and v > 0 for v in value))


def _check_resize(resize: Any, where: str) -> None:
    """model.json's ``item_resize``: size, method, pad mode, resampling filters."""
    if not isinstance(resize, dict) or set(resize) != {"size", "method", "pad_mode", "resamples"}:
        raise LeukoError(f"{where}: key item_resize: expected size, method, pad_mode and resamples")
    if not _is_size(resize["size"]) or resize["method"] not in RESIZE_METHODS or resize["pad_mode"] not in PAD_MODES:
        raise LeukoError(f"{where}: key item_resize: {resize!r} is not a valid resize")
    resamples = resize["resamples"]
    if not isinstance(resamples, list) or len(resamples) != 2 or not all(
            isinstance(r, Integral) and not isinstance(r, bool) and 0 <= r <= 5 for r in resamples):
        raise LeukoError(f"{where}: key item_resize.resamples: {resamples!r} is not two PIL resampling filters")


def _check_augmentation(aug: Any, where: str) -> None:
    """model.json's ``augmentation``: exactly the ``aug_transforms`` arguments, each a plain value."""
    if not isinstance(aug, dict) or set(aug) != set(AUGMENTATION_KEYS):
        raise LeukoError(f"{where}: key augmentation: expected the keys {', '.join(AUGMENTATION_KEYS)}")
    for key, value in aug.items():
        if key in ("do_flip", "flip_vert", "align_corners", "batch"):
            fine = isinstance(value, bool)
        elif key == "mode":
            fine = value in ("bilinear", "nearest", "bicubic")
        elif key == "pad_mode":
            fine = value in PAD_MODES
        elif key == "size":
            fine = value is None or _is_size(value)
        else:
            fine = isinstance(value, Real) and not isinstance(value, bool)
        if not fine:
            raise LeukoError(f"{where}: key augmentation.{key}: {value!r} is not valid")


def _check_normalize(normalize: Any, where: str) -> None:
    """model.json's ``normalize``: null, or three means and three positive standard deviations."""
    if normalize is None:
        return
    fine = isinstance(normalize, dict) and set(normalize) == {"mean", "std"} and all(
        isinstance(normalize[k], list) and len(normalize[k]) == 3
        and all(isinstance(v, Real) and not isinstance(v, bool) for v in normalize[k]) for k in ("mean", "std"))
    if not fine or min(normalize["std"]) <= 0:
        raise LeukoError(f"{where}: key normalize: expected null or three means and three positive stds")


def learner_from_spec(spec: dict, state_dict: dict, where: str = "model.json"):
    """A fastai Learner on the CPU rebuilt from a model.json ``spec`` and the weights ``state_dict`` (loaded
    strictly): nothing is unpickled. ``where`` names model.json in errors."""
    from fastai.vision.all import (
        CategoryBlock,
        DataBlock,
        ImageBlock,
        IndexSplitter,
        Learner,
        Normalize,
        Resize,
        aug_transforms,
        create_vision_model,
        parent_label,
    )
    from PIL import Image

    check_spec(spec, where, written=False)
    resize, aug = spec["item_resize"], dict(spec["augmentation"])
    if aug["size"] is not None:
        aug["size"] = tuple(aug["size"])
    batch_tfms = aug_transforms(**aug)
    if spec["normalize"] is not None:
        batch_tfms.append(Normalize.from_stats(spec["normalize"]["mean"], spec["normalize"]["std"], cuda=False))
    block = DataBlock(
        blocks=(ImageBlock, CategoryBlock(vocab=list(spec["classes"]))),
        get_y=parent_label,
        splitter=IndexSplitter([]),
        item_tfms=Resize(tuple(resize["size"]), method=resize["method"], pad_mode=resize["pad_mode"],
                         resamples=tuple(Image.Resampling(r) for r in resize["resamples"])),
        batch_tfms=batch_tfms,
    )
    with tempfile.TemporaryDirectory() as tmp:  # fastai infers the item types from one item, then drops it
        item = Path(tmp) / spec["classes"][0] / "item.png"
        item.parent.mkdir()
        Image.new("RGB", (1, 1)).save(item)
        dls = block.dataloaders([item], num_workers=spec["num_workers"], device="cpu").new_empty()
    arch, norm = spec["architecture"], spec.get("norm", DEFAULT_NORM)
    model = set_norm(create_vision_model(arch_function(arch), spec["n_out"], pretrained=False), norm)
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        layers = arch if norm == DEFAULT_NORM else f"{arch} ({norm} norm)"
        raise LeukoError(f"{where}: the weights do not fit a {layers} with {spec['n_out']} outputs "
                         f"({first})") from None
    return Learner(dls, model)


def learner_signature(learn) -> dict:
    """What decides a learner's predictions, plain TTA included, as comparable plain values: classes, the
    transforms of its validation loader (their settings, not their last random draw), the input types, loss
    (hence the activation of ``get_preds``), the model's layers and the loader's workers."""
    valid = learn.dls.valid
    loss = learn.loss_func
    return {
        "classes": [str(c) for c in learn.dls.vocab],
        "item_transforms": describe(list(valid.after_item.fs)),
        "before_batch": describe(list(valid.before_batch.fs)),
        "batch_transforms": describe(list(valid.after_batch.fs)),
        "input_types": [repr(f) for f in learn.dls.valid_ds.tls[0].tfms.fs],
        "loss": {"type": _name(type(loss)), "func": _name(type(getattr(loss, "func", None))),
                 **{k: describe(getattr(loss, k, None)) for k in ("axis", "flatten", "floatify", "is_2d")}},
        "model": repr(learn.model),
        "num_workers": int(valid.fake_l.num_workers),
    }


def _name(obj: Any) -> str:
    """``module.qualname`` of a class or function."""
    return f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', type(obj).__name__)}"


def describe(value: Any) -> Any:
    """``value`` as plain JSON-like values: numbers, strings, lists, dicts; objects as their type and attributes
    (those in ``RUNTIME_STATE`` left out; ``split_idx`` too for affine transforms, which reset it on every call)."""
    import torch
    from fastcore.foundation import L

    if isinstance(value, Enum):
        return f"{type(value).__name__}.{value.name}"
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, Integral):
        return int(value)
    if isinstance(value, Real):
        return float(value)
    if isinstance(value, torch.Tensor):
        return {"tensor": value.detach().cpu().tolist(), "dtype": str(value.dtype)}
    if isinstance(value, functools.partial):
        return {"partial": _name(value.func), "args": describe(list(value.args)), "keywords": describe(value.keywords)}
    if isinstance(value, dict):
        return {str(k): describe(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple, L)):
        return [describe(v) for v in value]
    if inspect.isroutine(value) or inspect.isclass(value):
        return _name(value)
    if hasattr(value, "__dict__"):
        affine = any(c.__name__ == "AffineCoordTfm" for c in type(value).__mro__)
        return {"type": _name(type(value)),
                **{k: describe(v) for k, v in sorted(vars(value).items())
                   if k not in RUNTIME_STATE and not (affine and k == "split_idx")}}
    return repr(value)
