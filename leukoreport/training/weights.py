"""ImageNet weights of the backbone (resnet18 unless ``arch`` says otherwise): where torchvision caches them and
whether they are there. The file is the one fastai's ``vision_learner`` loads: torchvision's ``DEFAULT`` weights of
the architecture (resnet18, resnet34: IMAGENET1K_V1; resnet50: IMAGENET1K_V2)."""

from __future__ import annotations

import hashlib
import os
import socket
from dataclasses import asdict, dataclass
from pathlib import Path

from leukoreport.base.errors import LeukoError
from leukoreport.training.normalisation import ARCHITECTURES

__all__ = ["ARCH", "WEIGHTS_NAME", "WeightsInfo", "check_weights", "download_file", "sha256", "weights_name",
           "weights_path", "weights_problem", "weights_url"]

ARCH = "resnet18"  # the paper's backbone, the default of every function here
WEIGHTS_NAME = "IMAGENET1K_V1"  # resnet18's


@dataclass
class WeightsInfo:
    """Which initialisation a run uses, for the report and for the training job."""

    pretrained: bool
    init: str
    path: str | None
    sha256: str | None

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        return asdict(self)


def _default_weights(arch: str):
    """torchvision's ``DEFAULT`` weights enum of ``arch`` (what fastai's model_meta asks for)."""
    from torchvision.models import get_model_weights

    if arch not in ARCHITECTURES:
        raise LeukoError(f"config key arch: {arch!r} is not one of {', '.join(ARCHITECTURES)}")
    return get_model_weights(arch).DEFAULT


def weights_name(arch: str = ARCH) -> str:
    """The name of ``arch``'s ImageNet weights in torchvision, e.g. 'IMAGENET1K_V1'."""
    return _default_weights(arch).name


def weights_url(arch: str = ARCH) -> str:
    """The URL torchvision downloads ``arch``'s ImageNet weights from."""
    return _default_weights(arch).url


def weights_path(arch: str = ARCH) -> Path:
    """The file torchvision loads ``arch``'s weights from (honours ``TORCH_HOME``)."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights_url(arch))


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download_file(url: str, dest: Path, timeout: float) -> None:
    """Download ``url`` to ``dest`` through a temporary file, giving up after ``timeout`` seconds per read."""
    import torch

    dest.parent.mkdir(parents=True, exist_ok=True)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        torch.hub.download_url_to_file(url, str(dest), progress=False)
    finally:
        socket.setdefaulttimeout(previous)


def weights_problem(path: Path, digest: str, arch: str = ARCH) -> str | None:
    """Why the weights file is not torchvision's ``arch`` file, or None when it is (``digest``: its SHA-256)."""
    import torch
    from torch.hub import HASH_REGEX
    from torchvision.models import get_model

    match = HASH_REGEX.search(path.name)
    if match and not digest.startswith(match.group(1)):
        return (f"SHA-256 starts with {digest[:len(match.group(1))]}, the file name promises {match.group(1)}: "
                "damaged or not torchvision's file (delete it and run 'leukoreport weights --download')")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        get_model(arch, weights=None).load_state_dict(state)
    except Exception as exc:
        return f"not a {_label(arch)} state dict ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"
    return None


def _label(arch: str) -> str:
    """'resnet50' -> 'ResNet50'."""
    return arch.replace("resnet", "ResNet")


def check_weights(pretrained: bool, download: bool = True, timeout: float = 20.0, arch: str = ARCH) -> WeightsInfo:
    """Make sure ``arch``'s ImageNet weights are cached when ``pretrained``; fail early with a one-line error if
    not."""
    if not pretrained:
        return WeightsInfo(False, "random (pretrained: false)", None, None)
    path = weights_path(arch)
    if not path.is_file() and download:
        try:
            download_file(weights_url(arch), path, timeout)
        except Exception as exc:  # no network, proxy, timeout: all mean "not available here"
            reason = f"{type(exc).__name__}: {exc}"
            raise LeukoError(
                f"{path}: ImageNet weights for {arch} are not cached and could not be downloaded "
                f"({reason}); put the file there (or set TORCH_HOME) or set `pretrained: false` in the config"
            ) from exc
    if not path.is_file():
        raise LeukoError(
            f"{path}: ImageNet weights for {arch} are not cached and downloading is off "
            "(`download_weights: false`); put the file there or set `pretrained: false` in the config"
        )
    return WeightsInfo(True, f"ImageNet (torchvision {weights_name(arch)})", str(path), sha256(path))
