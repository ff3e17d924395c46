"""Benchmark of the fitting loop: the project's loop against the straightforward reference loop.

Both run in the same process on the same data with the same settings and seed, through the same loop
(:func:`rnr.fitting.fit.optimise`: sampler, Adam, logging); they differ only in how the energy is formulated:

* ``project``: :class:`rnr.fitting.fit.RNRObjective`, one jet pass with closed-form Jacobians and a hand-written
  backward (rnr/fitting/jet.py);
* ``reference``: :class:`rnr.methods.reference.ReferenceRNRObjective`, a separate forward pass per step and
  autograd Jacobians with ``create_graph=True`` (the test suite's reference).

Before timing, the loss and the gradients of every parameter on the first batch are computed both ways from
the same initial network and compared (:func:`first_iteration_check`). Each repeat times the project's loop
and then the reference loop; iterations/s are reported as the median over repeats, the ratio as the ratio
of the medians, memory as the peak over the loop (CPU: the process's peak resident set, reset before each
loop where Linux allows it; CUDA: torch's peak allocation).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import Settings
from ..data.case import ConvertedCase
from ..fitting.fit import FitContext, make_sampler, optimise
from ..fitting.fit_data import FitData
from ..runtime import device_description, package_versions, resolve_device
from .reference import ReferenceRNRObjective
from .rnr import RNRObjective, rnr_data

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
    cls: type[RNRObjective],
    data: FitData,
    settings: Settings,
    timing: LoopTiming,
    *,
    progress: bool,
    label: str,
    iterations: int | None = None,
) -> None:
    """One full loop of ``iterations`` (default ``settings.iterations``) with a fresh network and sampler;
    appends to ``timing``."""
    device = data.points.device
    _reset_peak(device)
    objective = cls(data, settings)
    sampler = make_sampler(settings.params, settings.seed, data.n_points, device)
    n = settings.params.iterations if iterations is None else int(iterations)
    log = optimise(objective, sampler, n, settings.params.lr, progress=progress, label=label)
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
    reference_iterations: int | None = None,
) -> dict[str, Any]:
    """Check equality on the first iteration, then time both loops ``repeats`` times; return a record.

    The project's loop runs ``settings.iterations`` iterations, the reference loop ``reference_iterations``
    (default the same): the reference is ~6x slower per iteration, so a short benchmark gives it fewer
    iterations; iterations/s of both are comparable either way."""
    if settings.method != "rnr":
        raise ValueError(f"rnr bench times RNR's loop; got method={settings.method!r}")
    device = resolve_device(settings.device)
    data = rnr_data(FitContext(case, np.asarray(mask, dtype=bool), settings, device, "bench", False))
    batch = settings.params.resolve_batch_size(data.n_points)
    n_iterations = {"project": settings.params.iterations}
    if reference:
        n_iterations["reference"] = settings.params.iterations if reference_iterations is None else reference_iterations
    say(
        f"bench: case {case.case} {case.size_xyz} on {device} ({device_description(device)}), "
        f"{data.n_points} mask points, {' / '.join(f'{v} ({k})' for k, v in n_iterations.items())} "
        f"iterations x {batch} points, "
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
                iterations=n_iterations[timing.name],
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
        "iterations": n_iterations,
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


# -- evaluation pass ---------------------------------------------------------------------------------------
#: A DIR-Lab-size case: the 256 x 256 x 94 grid of DIR-Lab case 1 and about 1.6 M T00 lung-mask voxels.
EVAL_SIZE_XYZ = (256, 256, 94)
EVAL_SPACING_XYZ = (0.97, 0.97, 2.5)
EVAL_POINTS = 1_600_000


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(device: torch.device, fn: Callable[[], Any]) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def run_evaluation_benchmark(
    device: torch.device | str = "cpu",
    n_points: int = EVAL_POINTS,
    repeats: int = 1,
    old_points: int = 0,
    n_blocks: int = 5,
    width: int = 100,
    seed: int = 0,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Time the evaluation pass (every phi_n and det J of every phi_n at ``n_points`` voxels, through
    :meth:`rnr.fitting.network.ResNetTransform.map_steps_and_detj`) against the matrix-rate limit measured here.

    Points: uniform in the DIR-Lab-size grid :data:`EVAL_SIZE_XYZ`; network: RNR's initialisation (seeded).
    Each repeat runs, interleaved in this process: (1) the limit, the pass's matrix products alone on the same
    shapes, chunks and threads (:func:`rnr.fitting.jet.products_only_pass`), and one large product of the same width
    with torch's own threads — the faster of the two rates is the limit; (2) the evaluation pass; (3) with
    ``old_points`` > 0, the previous path (one chained single-threaded pass per step, phi_1..phi_N, autograd-
    free closed form, :meth:`Transform.jacobian_det_voxels` of the base class) on that many points, whose
    time is scaled to ``n_points``. Figures are medians over repeats; the ratio is pass time / limit time.
    """
    from ..fitting import jet
    from ..fitting.network import ResNetMap, ResNetTransform
    from ..fitting.transform import Transform

    device = torch.device(device)
    rng = np.random.default_rng(seed)
    points = rng.uniform(0.0, 1.0, (n_points, 3)) * (np.array(EVAL_SIZE_XYZ, dtype=np.float64) - 1.0)
    network = ResNetMap(n_blocks, width, seed=seed)
    transform = ResNetTransform(EVAL_SIZE_XYZ, EVAL_SPACING_XYZ, network).to(device)
    blocks = [network.block(n).params() for n in range(1, n_blocks + 1)]
    flop = jet.step_pass_flop(width, n_blocks) * n_points
    x = torch.rand((n_points, 3), generator=torch.Generator().manual_seed(seed)).to(device) * 2 - 1
    big_rows = min(4 * n_points, 2**18 if device.type == "cpu" else 2**22)
    big_a = torch.rand((big_rows, width), device=device)
    big_w = torch.rand((width, width), device=device)
    big_out = torch.empty((big_rows, width), device=device)
    say(
        f"bench --evaluate: {n_points} points in a {'x'.join(map(str, EVAL_SIZE_XYZ))} grid, {n_blocks} blocks "
        f"of width {width}, every step's points and det J, on {device} ({device_description(device)}); "
        f"{flop / n_points / 1e3:.0f} kFLOP of matrix products per point"
    )
    transform.map_steps_and_detj(points[: min(n_points, 20_000)])  # warm-up (threads, allocator)
    rows: dict[str, list[float]] = {"limit_chain_s": [], "limit_big_s": [], "pass_s": [], "old_s": []}
    peak = []
    old = points[: max(0, min(old_points, n_points))]
    for r in range(repeats):
        rows["limit_chain_s"].append(_timed(device, lambda: jet.products_only_pass(x, blocks)))
        t_big = _timed(device, lambda: [torch.mm(big_a, big_w, out=big_out) for _ in range(10)])
        rows["limit_big_s"].append(t_big / (10 * 2 * big_rows * width * width) * flop)
        _reset_peak(device)
        rows["pass_s"].append(_timed(device, lambda: transform.map_steps_and_detj(points)))
        peak.append(_peak_mb(device))
        if old_points > 0:
            t_old = _timed(
                device,
                lambda: [Transform.jacobian_det_voxels(transform, old, n) for n in range(1, n_blocks + 1)],
            )
            rows["old_s"].append(t_old * n_points / len(old))
        line = ", ".join(f"{k} {v[-1]:.2f}" for k, v in rows.items() if v)
        say(f"bench --evaluate: repeat {r + 1}/{repeats}: {line}")
    med = {k: statistics.median(v) for k, v in rows.items() if v}
    limit_s = min(med["limit_chain_s"], med["limit_big_s"])
    record: dict[str, Any] = {
        "n_points": n_points,
        "size_xyz": list(EVAL_SIZE_XYZ),
        "n_blocks": n_blocks,
        "width": width,
        "device": str(device),
        "device_name": device_description(device),
        "threads": torch.get_num_threads(),
        "repeats": repeats,
        "flop_per_point": jet.step_pass_flop(width, n_blocks),
        "timings": rows,
        "pass_s": med["pass_s"],
        "points_per_s": n_points / med["pass_s"],
        "limit_s": limit_s,
        "limit_gflop_per_s": flop / limit_s / 1e9,
        "limit_chain_s": med["limit_chain_s"],
        "limit_big_s": med["limit_big_s"],
        "ratio_to_limit": med["pass_s"] / limit_s,
        "peak_memory_mb": max(peak),
        "versions": package_versions(),
    }
    say(
        f"bench --evaluate: limit (matrix products only): {med['limit_chain_s']:.2f} s in the pass's shapes and "
        f"threads, {med['limit_big_s']:.2f} s at the rate of one large product -> limit {limit_s:.2f} s "
        f"({record['limit_gflop_per_s']:.1f} GFLOP/s)"
    )
    say(
        f"bench --evaluate: pass {med['pass_s']:.2f} s = {record['points_per_s'] / 1e6:.3f} M points/s for "
        f"phi_1..phi_{n_blocks} and all their det J; ratio to the limit {record['ratio_to_limit']:.2f}x; "
        f"peak memory {record['peak_memory_mb']:.0f} MB"
    )
    if "old_s" in med:
        record["old_s"] = med["old_s"]
        record["speedup_vs_old"] = med["old_s"] / med["pass_s"]
        say(
            f"bench --evaluate: previous per-step path {med['old_s']:.2f} s (measured on {old_points} points, "
            f"scaled) -> {record['speedup_vs_old']:.1f}x faster"
        )
    return record
