"""The device a job computes on: resolving `device` and `precision`, bf16 support, and its description."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

from leukoreport.base.errors import LeukoError

__all__ = ["DeviceDescription", "cpu_bf16_support", "cpuinfo_bf16_support", "describe_device", "native_bf16",
           "resolve_device", "resolve_precision"]


def resolve_device(name: str, where: str = "config key device") -> str:
    """``auto`` means CUDA when available, else CPU; ``where`` names the setting in the error."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise LeukoError(f"{where}: '{name}' requested but CUDA is not available on this machine (use cpu)")
    return name


def cpu_bf16_support() -> str:
    """How this CPU computes bf16 natively: ``amx``, ``avx512_bf16`` or ``""`` (neither). Asks torch's cpuinfo
    probe (``torch.cpu.get_capabilities``), else the flags of /proc/cpuinfo on Linux."""
    import torch

    probe = getattr(torch.cpu, "get_capabilities", None)  # torch >= 2.5
    if probe is not None:
        try:
            caps = probe()
        except Exception:  # noqa: BLE001 - a failing probe falls back to /proc/cpuinfo
            caps = None
        if caps is not None:
            return "amx" if caps.get("amx_bf16") else "avx512_bf16" if caps.get("avx512_bf16") else ""
    return cpuinfo_bf16_support()


def cpuinfo_bf16_support(path: str | Path = "/proc/cpuinfo") -> str:
    """``cpu_bf16_support`` from the ``flags`` lines of /proc/cpuinfo; ``""`` where there is no such file."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return ""
    flags = {f for line in text.splitlines() if line.startswith("flags") for f in line.partition(":")[2].split()}
    return "amx" if "amx_bf16" in flags else "avx512_bf16" if "avx512_bf16" in flags else ""


def native_bf16(device: str) -> bool:
    """Whether ``device`` computes bf16 natively: a CUDA GPU with bf16, or a CPU with Intel AMX or AVX512-BF16
    (``cpu_bf16_support``)."""
    import torch

    if device.startswith("cuda"):
        return torch.cuda.is_bf16_supported()
    return bool(cpu_bf16_support())


def resolve_precision(name: str, device: str) -> str:
    """``auto`` means bf16 autocast where the device computes bf16 natively (``native_bf16``), else fp32;
    bf16 may be forced on any device, fp16 needs CUDA."""
    if name == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    if name == "fp16" and not device.startswith("cuda"):
        raise LeukoError(f"config key precision: 'fp16' needs a CUDA device; this run trains on {device}")
    return name


@dataclass(frozen=True)
class DeviceDescription:
    """The machine a step runs on: its torch device, GPU name (CUDA) or processor, and CPU cores."""

    device: str
    gpu: str | None
    processor: str
    machine: str
    cores: int | None

    @property
    def short(self) -> str:
        """'cuda:0 (NAME)' or 'cpu (x86_64)', as train.json records it."""
        return f"{self.device} ({self.gpu})" if self.gpu else f"cpu ({self.machine})"

    @property
    def text(self) -> str:
        """'CUDA: NAME' or 'CPU: <processor>, N cores', as the reports and benchmarks print it."""
        return f"CUDA: {self.gpu}" if self.gpu else f"CPU: {self.processor}, {self.cores or '?'} cores"


def describe_device(device: str = "auto") -> DeviceDescription:
    """Describe ``device`` (``auto``: the GPU when torch sees one, else the CPU); the one home of this fact."""
    gpu = None
    try:
        import torch

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device.startswith("cuda"):
            gpu = torch.cuda.get_device_name(torch.device(device))
    except Exception:  # noqa: BLE001 - torch missing or broken: describe the CPU
        device = "cpu"
    machine = platform.machine() or "unknown"
    return DeviceDescription(device=device, gpu=gpu, processor=platform.processor() or machine, machine=machine,
                             cores=os.cpu_count())
