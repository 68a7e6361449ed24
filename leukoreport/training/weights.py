"""ImageNet weights for the ResNet18 backbone: where torchvision caches them and whether they are there."""

from __future__ import annotations

import hashlib
import os
import socket
from dataclasses import asdict, dataclass
from pathlib import Path

from leukoreport.base.errors import LeukoError

ARCH = "resnet18"
WEIGHTS_NAME = "IMAGENET1K_V1"


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


def weights_url() -> str:
    """The URL torchvision downloads the ResNet18 ImageNet weights from."""
    from torchvision.models import ResNet18_Weights

    return ResNet18_Weights[WEIGHTS_NAME].url


def weights_path() -> Path:
    """The file torchvision loads the weights from (honours ``TORCH_HOME``)."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights_url())


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(url: str, dest: Path, timeout: float) -> None:
    """Download ``url`` to ``dest`` through a temporary file, giving up after ``timeout`` seconds per read."""
    import torch

    dest.parent.mkdir(parents=True, exist_ok=True)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        torch.hub.download_url_to_file(url, str(dest), progress=False)
    finally:
        socket.setdefaulttimeout(previous)


def check_weights(pretrained: bool, download: bool = True, timeout: float = 20.0) -> WeightsInfo:
    """Make sure the ImageNet weights are cached when ``pretrained``; fail early with a one-line error if not."""
    if not pretrained:
        return WeightsInfo(False, "random (pretrained: false)", None, None)
    path = weights_path()
    if not path.is_file() and download:
        try:
            _download(weights_url(), path, timeout)
        except Exception as exc:  # no network, proxy, timeout: all mean "not available here"
            reason = f"{type(exc).__name__}: {exc}"
            raise LeukoError(
                f"{path}: ImageNet weights for {ARCH} are not cached and could not be downloaded "
                f"({reason}); put the file there (or set TORCH_HOME) or set `pretrained: false` in the config"
            ) from exc
    if not path.is_file():
        raise LeukoError(
            f"{path}: ImageNet weights for {ARCH} are not cached and downloading is off "
            "(`download_weights: false`); put the file there or set `pretrained: false` in the config"
        )
    return WeightsInfo(True, f"ImageNet (torchvision {WEIGHTS_NAME})", str(path), sha256(path))
