"""Opening a run's model: ``model.pkl`` (fastai ``load_learner``, unpickled: fastai's warning is shown) or the
weights-only pair ``model.safetensors`` + ``model.json`` (nothing unpickled), with the SHA-256 checks.

A ``model.pkl`` with a ``train.json`` beside it that records ``model_sha256`` is unpickled only when the file's
SHA-256 matches; the weights of the pair must match ``weights_sha256`` in model.json (and in train.json, when
recorded there). The bytes checked are the bytes loaded.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

from leukoreport.base.atomic_io import read_json
from leukoreport.base.checksums import sha256_bytes, sha256_file
from leukoreport.base.errors import LeukoError
from leukoreport.training.safe_export import check_spec, learner_from_spec

__all__ = ["PICKLE_SUFFIXES", "SAFE_SUFFIXES", "TRAIN_JSON", "load_model_file", "load_pickled", "load_safe",
           "recorded_hash", "safe_pair", "verify_model"]

PICKLE_SUFFIXES = (".pkl",)
SAFE_SUFFIXES = (".safetensors", ".json")
TRAIN_JSON = "train.json"  # the run's training record, beside its model files


def load_model_file(path: str | Path, cpu: bool = True):
    """The fastai Learner in ``path``: a ``.pkl`` (``load_pickled``) or a ``.safetensors``/``.json`` of the
    weights-only pair (``load_safe``); on the CPU, else on fastai's default device."""
    path = Path(path)
    if not path.is_file():
        raise LeukoError(f"{path.as_posix()}: model file not found")
    suffix = path.suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        return load_pickled(path, cpu)
    if suffix in SAFE_SUFFIXES:
        return load_safe(path, cpu)
    raise LeukoError(f"{path.as_posix()}: not a model file (expected model.pkl, model.safetensors or model.json)")


def recorded_hash(train_json: str | Path, key: str) -> str | None:
    """The SHA-256 ``key`` of a train.json (None when the file or the key is not there)."""
    train_json = Path(train_json)
    if not train_json.is_file():
        return None
    value = read_json(train_json).get(key)
    if value is not None and not isinstance(value, str):
        raise LeukoError(f"{train_json.as_posix()}: key {key}: {value!r} is not a hex SHA-256")
    return value


def load_pickled(path: str | Path, cpu: bool = True):
    """fastai ``load_learner`` on ``path``'s bytes, refused before unpickling when a ``train.json`` beside it
    records another ``model_sha256``; fastai's insecure-pickle warning is always shown."""
    from fastai.learner import load_learner

    path = Path(path)
    data = path.read_bytes()
    recorded = recorded_hash(path.parent / TRAIN_JSON, "model_sha256")
    actual = sha256_bytes(data)
    if recorded is not None and recorded != actual:
        raise LeukoError(f"{path.as_posix()}: SHA-256 {actual} differs from {recorded} recorded in "
                         f"{(path.parent / TRAIN_JSON).as_posix()}; not unpickling a model file changed since "
                         "training")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch's deprecation notices on importing fastai
        warnings.filterwarnings("always", message=".*insecure pickle")  # shown every time, never filtered out
        try:
            return load_learner(io.BytesIO(data), cpu=cpu)
        except Exception as exc:
            raise LeukoError(f"{path.as_posix()}: cannot load fastai learner ({type(exc).__name__}: "
                             f"{' '.join(str(exc).split())})") from None


def safe_pair(path: str | Path) -> tuple[Path, Path]:
    """(weights, model.json) of the pair ``path`` belongs to: the .json beside a .safetensors of the same name,
    or the weights file a model.json names (in its folder)."""
    path = Path(path)
    if path.suffix.lower() == ".safetensors":
        spec_path = path.with_suffix(".json")
        if not spec_path.is_file():
            raise LeukoError(f"{spec_path.as_posix()}: file not found (needed beside {path.name} to rebuild the "
                             "model)")
        return path, spec_path
    spec = read_json(path, f"the model in {path.name}")
    name = spec.get("weights_file")
    if not isinstance(name, str) or not name or Path(name).name != name:
        raise LeukoError(f"{path.as_posix()}: key weights_file: {name!r} is not a file name")
    weights = path.parent / name
    if not weights.is_file():
        raise LeukoError(f"{weights.as_posix()}: file not found (the weights named in {path.name})")
    return weights, path


def load_safe(path: str | Path, cpu: bool = True):
    """The learner rebuilt from a ``model.safetensors`` + ``model.json`` pair (either file given): weights checked
    against model.json's ``weights_sha256`` (and a train.json's beside them), loaded strictly, nothing unpickled."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    weights, spec_path = safe_pair(path)
    where = spec_path.as_posix()
    spec = check_spec(read_json(spec_path, "rebuilding the model"), where)
    data = weights.read_bytes()
    actual = sha256_bytes(data)
    if actual != spec["weights_sha256"]:
        raise LeukoError(f"{weights.as_posix()}: SHA-256 {actual} differs from {spec['weights_sha256']} recorded "
                         f"in {where}")
    recorded = recorded_hash(weights.parent / TRAIN_JSON, "weights_sha256")
    if recorded is not None and recorded != actual:
        raise LeukoError(f"{weights.as_posix()}: SHA-256 {actual} differs from {recorded} recorded in "
                         f"{(weights.parent / TRAIN_JSON).as_posix()}")
    try:
        state = load(data)
    except SafetensorError as exc:
        raise LeukoError(f"{weights.as_posix()}: not a safetensors file ({' '.join(str(exc).split())})") from None
    learn = learner_from_spec(spec, state, where)
    if not cpu:
        from fastai.torch_core import default_device

        device = default_device()
        learn.dls.to(device)
        learn.model.to(device)
    return learn


def verify_model(model_pkl: str | Path, train_json: str | Path) -> bool:
    """True when ``model_pkl``'s SHA-256 equals the ``model_sha256`` recorded in ``train_json``, False when none
    is recorded (a run trained before checksums); one-line LeukoError naming both hashes when they differ."""
    model_pkl, train_json = Path(model_pkl), Path(train_json)
    recorded = read_json(train_json, f"checking {model_pkl.name}").get("model_sha256")
    if recorded is None:
        return False
    actual = sha256_file(model_pkl)
    if actual != recorded:
        raise LeukoError(f"{model_pkl.as_posix()}: SHA-256 {actual} differs from {recorded} recorded in "
                         f"{train_json.as_posix()} (changed or damaged since training); rerun its training with "
                         f"`snakemake --forcerun train` (or `--forcerun {model_pkl.as_posix()}` for this seed only)")
    return True
