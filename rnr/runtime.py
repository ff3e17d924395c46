"""Where and with what a computation runs: device resolution, peak memory, and the software versions.

The one place that asks torch about CUDA: every other module takes a ``torch.device`` argument.
"""

from __future__ import annotations

import platform
import resource
from importlib.metadata import PackageNotFoundError, version

import numpy as np
import torch

from .config import SettingsError


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without CUDA is a SettingsError (no silent fall-back:
    a benchmark must not quietly run a hundred times slower)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SettingsError("setting device='cuda' but CUDA is not available here; use device=auto or cpu")
    return torch.device(name)


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak-memory window on a CUDA device (the CPU figure is the process's lifetime peak)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device: torch.device) -> float:
    """CUDA: max memory allocated by torch on ``device`` since :func:`reset_peak_memory`; CPU: the process's
    peak resident set size. In MB (2**20 bytes)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def device_description(device: torch.device) -> str:
    """The GPU's name, or the CPU's architecture and torch's thread count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"


def package_versions() -> dict[str, str]:
    """Versions of the packages that determine a result (stored in checkpoints and run records)."""
    out = {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__}
    for name in ("rnr", "SimpleITK", "scipy"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out
