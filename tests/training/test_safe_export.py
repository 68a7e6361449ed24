"""Weights-only export: model.safetensors + model.json rebuild the learner exactly (training.safe_export)."""

from __future__ import annotations

import errno
import hashlib
import json
import struct
from dataclasses import asdict
from pathlib import Path

import pytest

from leukoreport.base.errors import LeukoError
from leukoreport.training import safe_export
from leukoreport.training.safe_export import (
    check_spec,
    export_safe,
    learner_from_spec,
    learner_signature,
    model_spec,
)
from leukoreport.training.two_phase import (
    build_learner,
    export_learner,
    make_dataloaders,
    train,
)
from tests.conftest import tiny_train_config

CFG = tiny_train_config()
RECIPE = {"size": 32, "batch_size": 8, "pretrained": False, "augmentation": asdict(CFG.augmentation)}


@pytest.fixture(scope="module")
def learn(tiny_split):
    return train(tiny_split, CFG, seed=5, threads=1)[0]


@pytest.fixture(scope="module")
def exported(learn, tmp_path_factory):
    folder = tmp_path_factory.mktemp("safe")
    hashes = export_safe(learn, folder / "model.safetensors", folder / "model.json", RECIPE)
    return folder, hashes, json.loads((folder / "model.json").read_text())


def _safetensors_header(path: Path) -> dict:
    """The JSON header of a safetensors file, read by its documented layout (u64 little-endian length, JSON)."""
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + length])


def test_export_returns_the_hashes_of_the_weights_and_the_recipe(exported):
    folder, hashes, spec = exported
    weights = (folder / "model.safetensors").read_bytes()
    canonical = json.dumps(RECIPE, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert hashes == {"weights_sha256": hashlib.sha256(weights).hexdigest(),
                      "recipe_hash": hashlib.sha256(canonical.encode()).hexdigest()}
    assert spec["weights_sha256"] == hashes["weights_sha256"] and spec["recipe_hash"] == hashes["recipe_hash"]
    assert sorted(p.name for p in folder.iterdir()) == ["model.json", "model.safetensors"]  # no temporaries


def test_model_json_describes_the_learner(exported, learn):
    import fastai
    import torch

    _, _, spec = exported
    aug = asdict(CFG.augmentation)
    assert spec["format"] == "leukoreport-safe-model" and spec["format_version"] == 1
    assert spec["architecture"] == "resnet18" and spec["norm"] == "batch"
    assert spec["weights_file"] == "model.safetensors"
    assert spec["classes"] == ["alpha", "beta", "gamma"] == [str(c) for c in learn.dls.vocab] and spec["n_out"] == 3
    assert spec["image_size"] == [32, 32]
    assert spec["item_resize"] == {"size": [32, 32], "method": "crop", "pad_mode": "reflection", "resamples": [2, 0]}
    assert spec["normalize"] is None  # vision_learner normalises only pretrained models
    assert {k: spec["augmentation"][k] for k in aug} == pytest.approx(aug)
    assert spec["augmentation"]["size"] == [32, 32] and spec["augmentation"]["mult"] == 1.0
    assert spec["num_workers"] == CFG.num_workers
    assert spec["versions"]["fastai"] == fastai.__version__ and spec["versions"]["torch"] == torch.__version__
    assert check_spec(spec, "model.json") is spec


def test_weights_file_is_safetensors_holding_the_state_dict(exported, learn):
    import torch
    from safetensors.torch import load_file

    folder, _, _ = exported
    state = learn.model.state_dict()
    header = _safetensors_header(folder / "model.safetensors")
    assert header["__metadata__"] == {"format": "leukoreport-safe-model", "format_version": "1"}
    assert set(header) - {"__metadata__"} == set(state)
    loaded = load_file(folder / "model.safetensors")
    assert all(torch.equal(loaded[k], state[k].cpu()) and loaded[k].dtype == state[k].dtype for k in state)


def test_rebuilt_learner_has_the_same_signature_and_weights(exported, learn):
    import torch
    from safetensors.torch import load_file

    folder, _, spec = exported
    rebuilt = learner_from_spec(spec, load_file(folder / "model.safetensors"))
    assert learner_signature(rebuilt) == learner_signature(learn)
    mine, theirs = rebuilt.model.state_dict(), learn.model.state_dict()
    assert all(torch.equal(mine[k], theirs[k].cpu()) for k in theirs)
    assert type(rebuilt.loss_func).__name__ == "CrossEntropyLossFlat"  # get_preds applies its softmax


def test_signature_ignores_the_last_random_draw(learn, tiny_split):
    """TTA leaves each transform's last draw behind; the signature (what export compares) stays the same."""
    before = learner_signature(learn)
    with learn.no_bar():
        learn.tta(dl=learn.dls.test_dl(tiny_split["path"][:4].tolist(), bs=2))
    assert learner_signature(learn) == before


def test_normalisation_is_written_when_the_learner_normalises(tiny_split, tmp_path):
    """vision_learner adds ImageNet Normalize for pretrained models; the same transform added by hand here."""
    from fastai.vision.all import Normalize, imagenet_stats

    learner = build_learner(make_dataloaders(tiny_split, CFG, "cpu"), pretrained=False)
    learner.dls.add_tfms([Normalize.from_stats(*imagenet_stats, cuda=False)], "after_batch")
    export_safe(learner, tmp_path / "model.safetensors", tmp_path / "model.json", RECIPE)
    spec = json.loads((tmp_path / "model.json").read_text())
    assert spec["normalize"]["mean"] == pytest.approx(list(imagenet_stats[0]), abs=1e-7)
    assert spec["normalize"]["std"] == pytest.approx(list(imagenet_stats[1]), abs=1e-7)
    from safetensors.torch import load_file

    rebuilt = learner_from_spec(spec, load_file(tmp_path / "model.safetensors"))
    assert learner_signature(rebuilt) == learner_signature(learner)


def test_a_transform_model_json_cannot_describe_is_refused(tiny_split, tmp_path):
    from fastai.vision.all import RandomErasing

    learner = build_learner(make_dataloaders(tiny_split, CFG, "cpu"), pretrained=False)
    learner.dls.add_tfms([RandomErasing()], "after_batch")
    with pytest.raises(LeukoError, match="batch transform RandomErasing cannot be written"):
        export_safe(learner, tmp_path / "model.safetensors", tmp_path / "model.json", RECIPE)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_weights_write_leaves_nothing(learn, tmp_path, monkeypatch):
    import safetensors.torch

    def full(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"half")
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    with pytest.raises(OSError):
        export_safe(learn, tmp_path / "model.safetensors", tmp_path / "model.json", RECIPE)
    assert list(tmp_path.iterdir()) == []


def test_model_pkl_still_loads_with_load_learner_alone(learn, tiny_split, tmp_path, predict_without_leukoreport):
    """As train.py does it: model.pkl, then the weights-only pair beside it; fastai alone still opens model.pkl."""
    export_learner(learn, tmp_path / "model.pkl")
    export_safe(learn, tmp_path / "model.safetensors", tmp_path / "model.json", RECIPE)
    pred, total, out = predict_without_leukoreport(tmp_path / "model.pkl", tiny_split["path"].iloc[0], tmp_path)
    assert "BLOCKED" in out and pred in {"alpha", "beta", "gamma"}
    assert total == pytest.approx(1.0, abs=1e-5)


def _broken(spec: dict, key: str, value) -> dict:
    copy = json.loads(json.dumps(spec))
    if value is KeyError:
        del copy[key]
    elif "." in key:
        outer, inner = key.split(".")
        copy[outer][inner] = value
    else:
        copy[key] = value
    return copy


@pytest.mark.parametrize("key, value, message", [
    ("format", "pickle", "key format: expected 'leukoreport-safe-model'"),
    ("format_version", 2, "key format_version: expected 1"),
    ("architecture", "vgg16", "key architecture: expected one of 'resnet18', 'resnet34', 'resnet50', got 'vgg16'"),
    ("norm", "layer", "key norm: expected one of 'batch', 'group', 'frozen', got 'layer'"),
    ("classes", KeyError, "key classes missing"),
    ("n_out", 4, "key n_out: 4 is not the number of classes (3)"),
    ("augmentation.xtra_tfms", "os.system", "key augmentation: expected the keys"),
    ("augmentation.max_rotate", "180", "key augmentation.max_rotate: '180' is not valid"),
    ("item_resize.method", "stretch", "key item_resize"),
    ("normalize", {"mean": [0, 0, 0], "std": [1, 0, 1]}, "key normalize"),
    ("weights_file", "../model.safetensors", "key weights_file"),
    ("weights_sha256", "abc", "key weights_sha256"),
])
def test_check_spec_names_the_file_and_key(exported, key, value, message):
    _, _, spec = exported
    with pytest.raises(LeukoError) as err:
        check_spec(_broken(spec, key, value), "runs/model.json")
    assert str(err.value).startswith("runs/model.json: ") and message in str(err.value)


def test_weights_of_another_shape_are_refused(exported):
    from safetensors.torch import load_file

    folder, _, spec = exported
    state = load_file(folder / "model.safetensors")
    last = [k for k in state if k.endswith(".weight")][-1]
    state[last] = state[last][:2]
    with pytest.raises(LeukoError, match="the weights do not fit a resnet18 with 3 outputs"):
        learner_from_spec(spec, state, "model.json")


def test_model_spec_lists_only_what_rebuilds(learn):
    assert set(model_spec(learn)) == set(safe_export.SPEC_KEYS)
