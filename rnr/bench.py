"""Benchmark of the fitting loop: the project's loop against the straightforward reference loop.

Both run in the same process on the same data with the same settings and seed, through the same loop
(:func:`rnr.fit.optimise`: sampler, Adam, logging); they differ only in how the energy is formulated:

* ``project``: :class:`rnr.fit.RNRObjective`, one jet pass with closed-form Jacobians and a hand-written
  backward (rnr/jet.py);
* ``reference``: :class:`rnr.reference.ReferenceRNRObjective`, a separate forward pass per step and
  autograd Jacobians with ``create_graph=True`` (the test suite's reference).

Before timing, the loss and the gradients of every parameter on the first batch are computed both ways from
the same initial network and compared (:func:`first_iteration_check`). Each repeat times the project's loop
and then the reference loop; iterations/s are reported as the median over repeats, the ratio as the ratio
of the medians, memory as the peak over the loop (CPU: the process's peak resident set, reset before each
loop where Linux allows it; CUDA: torch's peak allocation).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .case import ConvertedCase
from .config import Settings
from .fit import make_sampler, optimise
from .fit_data import FitData
from .methods.base import FitContext
from .methods.rnr import RNRObjective, rnr_data
from .reference import ReferenceRNRObjective
from .runtime import device_description, package_versions, resolve_device

#: Tolerances of the first-iteration check in float32: relative difference of the losses, and per parameter
#: tensor the largest absolute gradient difference relative to that tensor's largest reference gradient.
LOSS_RTOL = 1e-5
GRAD_RTOL = 1e-4


@dataclass
class EqualityCheck:
    """First-iteration comparison of the two formulations."""

    loss_project: float
    loss_reference: float
    loss_rel_diff: float
    grad_max_rel_diff: float
    loss_rtol: float = LOSS_RTOL
    grad_rtol: float = GRAD_RTOL

    @property
    def passed(self) -> bool:
        return self.loss_rel_diff <= self.loss_rtol and self.grad_max_rel_diff <= self.grad_rtol


def first_iteration_check(data: FitData, settings: Settings, dtype: torch.dtype = torch.float32) -> EqualityCheck:
    """Loss and parameter gradients of both formulations on the first batch, from the same initial network."""
    idx = make_sampler(settings.params, settings.seed, data.n_points, data.points.device).next()
    out = []
    for cls in (RNRObjective, ReferenceRNRObjective):
        objective = cls(data, settings, dtype=dtype)
        loss, _ = objective.loss(idx)
        grads = torch.autograd.grad(loss, objective.parameters())
        out.append((loss.detach(), grads))
    (loss_p, grads_p), (loss_r, grads_r) = out
    loss_rel = float((loss_p - loss_r).abs() / loss_r.abs().clamp_min(1e-30))
    grad_rel = max(
        float((gp - gr).abs().max() / gr.abs().max().clamp_min(1e-30)) for gp, gr in zip(grads_p, grads_r, strict=True)
    )
    return EqualityCheck(float(loss_p), float(loss_r), loss_rel, grad_rel)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:  # glibc keeps freed heap pages resident; give them back so the previous loop's peak does not linger
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:  # Linux: writing 5 to clear_refs resets the peak resident set size (VmHWM) to the current RSS
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


@dataclass
class LoopTiming:
    """Timings of one formulation over the repeats."""

    name: str
    wall_s: list[float] = field(default_factory=list)
    iterations_per_s: list[float] = field(default_factory=list)
    peak_memory_mb: list[float] = field(default_factory=list)

    @property
    def median_iterations_per_s(self) -> float:
        return statistics.median(self.iterations_per_s)


def time_loop(
    cls: type[RNRObjective], data: FitData, settings: Settings, timing: LoopTiming, *, progress: bool, label: str
) -> None:
    """One full loop of ``settings.iterations`` with a fresh network and sampler; appends to ``timing``."""
    device = data.points.device
    _reset_peak(device)
    objective = cls(data, settings)
    sampler = make_sampler(settings.params, settings.seed, data.n_points, device)
    log = optimise(objective, sampler, settings.params.iterations, settings.params.lr, progress=progress, label=label)
    timing.wall_s.append(log.wall_s)
    timing.iterations_per_s.append(log.iterations / log.wall_s)
    timing.peak_memory_mb.append(_peak_mb(device))


def run_benchmark(
    case: ConvertedCase,
    mask: np.ndarray,
    settings: Settings,
    repeats: int = 1,
    reference: bool = True,
    progress: bool = True,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Check equality on the first iteration, then time both loops ``repeats`` times; return a record."""
    if settings.method != "rnr":
        raise ValueError(f"rnr bench times RNR's loop; got method={settings.method!r}")
    device = resolve_device(settings.device)
    data = rnr_data(FitContext(case, np.asarray(mask, dtype=bool), settings, device, "bench", False))
    batch = settings.params.resolve_batch_size(data.n_points)
    say(
        f"bench: case {case.case} {case.size_xyz} on {device} ({device_description(device)}), "
        f"{data.n_points} mask points, {settings.params.iterations} iterations x {batch} points, "
        f"{settings.params.n_blocks} blocks of width {settings.params.width}, "
        f"terms: {', '.join(t.label for t in data.terms)}"
    )
    check = first_iteration_check(data, settings)
    say(
        f"bench: first iteration: loss {check.loss_project:.8f} (project) vs {check.loss_reference:.8f} "
        f"(reference), relative difference {check.loss_rel_diff:.1e}; largest relative gradient difference "
        f"{check.grad_max_rel_diff:.1e} -> {'equal' if check.passed else 'NOT EQUAL'} to float precision "
        f"(tolerances {LOSS_RTOL:g}, {GRAD_RTOL:g})"
    )
    loops = [LoopTiming("project")] + ([LoopTiming("reference")] if reference else [])
    classes = {"project": RNRObjective, "reference": ReferenceRNRObjective}
    for r in range(repeats):
        for timing in loops:
            time_loop(
                classes[timing.name],
                data,
                settings,
                timing,
                progress=progress,
                label=f"{timing.name} {r + 1}/{repeats}",
            )
            say(
                f"bench: repeat {r + 1}/{repeats} {timing.name}: {timing.iterations_per_s[-1]:.3f} it/s "
                f"({timing.wall_s[-1]:.1f} s), peak memory {timing.peak_memory_mb[-1]:.0f} MB"
            )
    record: dict[str, Any] = {
        "case": case.case,
        "size_xyz": list(case.size_xyz),
        "n_points": data.n_points,
        "batch_size": batch,
        "settings": settings.to_dict(),
        "repeats": repeats,
        "device": str(device),
        "device_name": device_description(device),
        "threads": torch.get_num_threads(),
        "equality": {**asdict(check), "passed": check.passed},
        "loops": {t.name: {**asdict(t), "median_iterations_per_s": t.median_iterations_per_s} for t in loops},
        "versions": package_versions(),
    }
    project = loops[0].median_iterations_per_s
    lines = [f"bench: {'loop':<10} {'it/s (median)':>14} {'s/it':>8} {'peak MB':>9}"]
    for t in loops:
        med = t.median_iterations_per_s
        lines.append(f"bench: {t.name:<10} {med:>14.3f} {1 / med:>8.4f} {max(t.peak_memory_mb):>9.0f}")
    if reference:
        record["ratio"] = project / loops[1].median_iterations_per_s
        lines.append(f"bench: ratio project / reference = {record['ratio']:.2f}x")
    for line in lines:
        say(line)
    return record
