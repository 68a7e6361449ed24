"""Opening model.pkl or model.safetensors/model.json: identical probabilities, SHA-256 checks before anything is
unpickled, a crafted pickle never run from the safe pair (leukoreport.inference.model_files)."""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from leukoreport.base.errors import LeukoError
from leukoreport.inference.model_files import load_model_file, verify_model
from leukoreport.inference.predict import load_learner_on, predict_probabilities
from leukoreport.training.safe_export import learner_signature
from tests.conftest import tiny_train_config

ROOT = Path(__file__).resolve().parents[2]
MONOCYTES = sorted((ROOT / "data" / "external_monocyte" / "monocyte").glob("*.*"))
CFG = tiny_train_config(num_workers=2)  # workers: as a default run


@pytest.fixture(scope="module")
def run(tiny_split, tmp_path_factory, exported_model) -> Path:
    """A run folder as train.py leaves it: model.pkl, model.safetensors, model.json and a train.json recording
    both SHA-256s."""
    folder = tmp_path_factory.mktemp("run")
    model = exported_model(tiny_split, CFG, folder, safe=True)
    spec = json.loads((folder / "model.json").read_text())
    (folder / "train.json").write_text(json.dumps({
        "seed": 3, "model_sha256": hashlib.sha256(model.read_bytes()).hexdigest(),
        "weights_sha256": spec["weights_sha256"], "recipe_hash": spec["recipe_hash"]}))
    return folder


@pytest.fixture
def crafted(run, tmp_path, write_crafted_pickle) -> tuple[Path, Path]:
    """A copy of the run whose model.pkl is a crafted pickle (genuine model.safetensors/model.json beside it),
    without train.json; and the marker file its code would create."""
    folder = tmp_path / "run"
    folder.mkdir()
    for name in ("model.safetensors", "model.json"):
        shutil.copy(run / name, folder / name)
    marker = tmp_path / "marker"
    write_crafted_pickle(folder / "model.pkl", marker)
    return folder, marker


def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


@pytest.mark.parametrize("tta", [False, True], ids=["plain", "tta"])
def test_pkl_and_safetensors_give_identical_probabilities(run, tta):
    """The nine external monocytes: bit-identical probabilities from model.pkl, model.safetensors and model.json
    (TTA seeded alike; the loaders' 2 workers draw its crops)."""
    assert len(MONOCYTES) == 9
    got = {name: predict_probabilities(load_learner_on(run / name), MONOCYTES, batch_size=4, tta=tta, seed=1)
           for name in ("model.pkl", "model.safetensors", "model.json")}
    assert got["model.pkl"].shape == (9, 3)
    assert np.allclose(got["model.pkl"].sum(axis=1), 1, atol=1e-5)
    assert np.array_equal(got["model.pkl"], got["model.safetensors"])
    assert np.array_equal(got["model.pkl"], got["model.json"])


def test_both_files_rebuild_the_same_learner(run):
    pkl, safe = load_model_file(run / "model.pkl"), load_model_file(run / "model.safetensors")
    assert learner_signature(pkl) == learner_signature(safe)


def test_the_pickle_path_shows_fastais_warning_and_the_safe_path_none(run):
    with pytest.warns(UserWarning, match="insecure pickle"):
        load_model_file(run / "model.pkl")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_model_file(run / "model.safetensors")
    assert not [w for w in caught if "pickle" in str(w.message)]


def test_the_crafted_pickle_runs_its_code_when_unpickled(crafted):
    """The threat is real: with no train.json to check against, unpickling runs the payload (and fails after)."""
    folder, marker = crafted
    with pytest.warns(UserWarning, match="insecure pickle"), pytest.raises(LeukoError) as err:
        load_model_file(folder / "model.pkl")
    assert marker.read_text() == "pwned"
    assert _one_line(err).startswith(f"{(folder / 'model.pkl').as_posix()}: cannot load fastai learner")


@pytest.mark.parametrize("name", ["model.safetensors", "model.json"])
def test_the_safe_pair_beside_a_crafted_pickle_never_runs_it(crafted, name):
    folder, marker = crafted
    learn = load_learner_on(folder / name)
    probs = predict_probabilities(learn, MONOCYTES[:3], tta=True)
    assert probs.shape == (3, 3) and not marker.exists()


def test_a_pickle_whose_hash_differs_from_train_json_is_refused_before_unpickling(crafted, run):
    folder, marker = crafted
    shutil.copy(run / "train.json", folder / "train.json")
    recorded = json.loads((run / "train.json").read_text())["model_sha256"]
    actual = hashlib.sha256((folder / "model.pkl").read_bytes()).hexdigest()
    with pytest.raises(LeukoError) as err:
        load_model_file(folder / "model.pkl")
    assert not marker.exists()
    assert _one_line(err) == (f"{(folder / 'model.pkl').as_posix()}: SHA-256 {actual} differs from {recorded} "
                              f"recorded in {(folder / 'train.json').as_posix()}; not unpickling a model file "
                              "changed since training")


def test_a_genuine_pickle_matching_train_json_loads(run):
    with pytest.warns(UserWarning, match="insecure pickle"):
        learn = load_model_file(run / "model.pkl")
    assert [str(c) for c in learn.dls.vocab] == ["alpha", "beta", "gamma"]


def _copy_pair(run: Path, dest: Path) -> Path:
    dest.mkdir()
    for name in ("model.safetensors", "model.json", "train.json"):
        shutil.copy(run / name, dest / name)
    return dest


def test_changed_weights_are_refused_naming_both_hashes(run, tmp_path):
    folder = _copy_pair(run, tmp_path / "run")
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    recorded = json.loads((folder / "model.json").read_text())["weights_sha256"]
    with pytest.raises(LeukoError) as err:
        load_model_file(folder / "model.json")
    assert _one_line(err) == (f"{weights.as_posix()}: SHA-256 {hashlib.sha256(data).hexdigest()} differs from "
                              f"{recorded} recorded in {(folder / 'model.json').as_posix()}")


def test_weights_recorded_otherwise_in_train_json_are_refused(run, tmp_path):
    folder = _copy_pair(run, tmp_path / "run")
    (folder / "train.json").write_text(json.dumps({"weights_sha256": "0" * 64}))
    with pytest.raises(LeukoError) as err:
        load_model_file(folder / "model.safetensors")
    assert _one_line(err).endswith(f"differs from {'0' * 64} recorded in {(folder / 'train.json').as_posix()}")


def test_a_safetensors_file_without_its_model_json(run, tmp_path):
    folder = _copy_pair(run, tmp_path / "run")
    (folder / "model.json").unlink()
    with pytest.raises(LeukoError) as err:
        load_model_file(folder / "model.safetensors")
    assert _one_line(err).startswith(f"{(folder / 'model.json').as_posix()}: file not found")


def test_a_model_json_that_is_not_ours(run, tmp_path):
    folder = _copy_pair(run, tmp_path / "run")
    spec = json.loads((folder / "model.json").read_text())
    (folder / "model.json").write_text(json.dumps({**spec, "architecture": "vit"}))
    with pytest.raises(LeukoError) as err:
        load_model_file(folder / "model.json")
    assert _one_line(err) == (f"{(folder / 'model.json').as_posix()}: key architecture: expected one of "
                              "'resnet18', 'resnet34', 'resnet50', got 'vit'")


def test_an_unknown_model_suffix(tmp_path):
    path = tmp_path / "model.pth"
    path.write_bytes(b"x")
    with pytest.raises(LeukoError, match="not a model file"):
        load_model_file(path)


def test_verify_model(run, tmp_path):
    model, info = run / "model.pkl", run / "train.json"
    assert verify_model(model, info) is True
    old = tmp_path / "train.json"
    old.write_text(json.dumps({"seed": 3}))
    assert verify_model(model, old) is False  # trained before checksums: nothing to compare
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"model_sha256": "f" * 64}))
    with pytest.raises(LeukoError) as err:
        verify_model(model, other)
    actual = hashlib.sha256(model.read_bytes()).hexdigest()
    text = _one_line(err)
    assert text.startswith(f"{model.as_posix()}: SHA-256 {actual} differs from {'f' * 64} recorded in "
                           f"{other.as_posix()}")
    assert "rerun its training with `snakemake --forcerun train`" in text
    with pytest.raises(LeukoError, match="file not found"):
        verify_model(model, tmp_path / "missing.json")
