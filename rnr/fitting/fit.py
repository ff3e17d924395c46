"""The one optimisation loop: Adam on a method's objective over batches of T00-mask points.

A loop-based method (rnr/methods/rnr.py, rnr/methods/idir.py) provides an :class:`Objective`: its trainable
parameters, its loss on a batch of mask-point indices and the fitted transform. :func:`optimise` runs Adam
on it with a :class:`~rnr.fitting.sampling.PointSampler`, keeps a per-iteration log on the device and stops with
:class:`FitError` when the loss stops being finite. Everything else (which data, which method, where the
run folder goes) lives elsewhere: rnr/fitting/fit_data.py, rnr/methods/, rnr/registration.py.

A method's ``fit`` gets a :class:`FitContext` typed by its settings block and returns a
:class:`MethodOutcome`; a loop-based method ends with :func:`fit_with_loop` (this loop, that outcome).
"""

from __future__ import annotations

import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from ..config import LoopSettings, MethodSettings, Settings
from ..data.case import ConvertedCase
from .fit_data import FitData
from .sampling import PointSampler
from .transform import Transform

#: A method's settings block (the type of ``FitContext.settings.params``); L: a loop-based method's.
S = TypeVar("S", bound=MethodSettings)
L = TypeVar("L", bound=LoopSettings)


class FitError(ValueError):
    """A fit that cannot go on (non-finite loss). The message names case, configuration and iteration."""


class Objective(ABC):
    """A method's model and loss on a batch of mask points (what :func:`optimise` needs).

    ``term_names`` name the logged terms, in the order of the ``terms`` tensor ``loss`` returns.
    ``main_threads``: when set, :func:`optimise` runs the loop with this many torch (OpenMP) threads on the
    calling thread and restores the previous setting afterwards (an objective that parallelises by itself).
    """

    term_names: tuple[str, ...] = ()
    main_threads: int | None = None

    @abstractmethod
    def parameters(self) -> list[torch.Tensor]:
        """The tensors Adam optimises (on the fitting device)."""

    @abstractmethod
    def loss(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss on the batch of mask points ``idx`` (B,) int64: (scalar with graph, terms (T,) detached)."""

    @abstractmethod
    def transform(self) -> Transform:
        """The fitted map."""


#: A watcher of the fit (rnr/reporting/curves.py): called as ``monitor(iteration, transform, loss, elapsed_s)`` every
#: ``monitor_every`` iterations with the map after that many Adam steps. It sees the map only, never the loss's graph.
Monitor = Callable[[int, Transform, float, float], None]


@dataclass
class FitLog:
    """Per-iteration log (columns iteration, loss, <term names>, elapsed_s), the loop's wall time and the
    seconds the monitor took (excluded from ``wall_s`` and ``elapsed_s``)."""

    frame: pd.DataFrame
    wall_s: float
    iterations: int
    monitor_s: float = 0.0


def _watch(objective: Objective, monitor: Monitor, iteration: int, loss: float, elapsed_s: float) -> None:
    """Show ``monitor`` the current map without touching the fit: the transform classes switch their network's
    ``requires_grad`` off, so the flags of the optimised tensors are put back afterwards (values, Adam's state
    and the sampler's generator are never touched), and nothing the monitor does is recorded by autograd."""
    params = objective.parameters()
    flags = [p.requires_grad for p in params]
    try:
        with torch.no_grad():
            monitor(iteration, objective.transform(), loss, elapsed_s)
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)


def optimise(
    objective: Objective,
    sampler: PointSampler,
    iterations: int,
    lr: float,
    *,
    progress: bool = True,
    label: str = "fit",
    monitor: Monitor | None = None,
    monitor_every: int = 0,
) -> FitLog:
    """Run Adam on ``objective`` for ``iterations`` batches from ``sampler``.

    With ``monitor`` and ``monitor_every`` = K > 0, the monitor sees the map after every K-th Adam step and
    after the last (:func:`_watch`); its time is measured and subtracted from the fitting time (``elapsed_s``,
    ``wall_s``) and reported as ``monitor_s``. It cannot change the fit: the final map is bit-for-bit the
    same with and without it (tests/test_curves.py).

    The loss and terms of every iteration are written into a log tensor on the device (no host copy per
    iteration on a GPU; finiteness is checked every iteration on the CPU, every 50 on a GPU). The loss of
    row ``iteration = k`` (1-based) is evaluated before the k-th Adam step.

    Raises:
        FitError: the loss became NaN or infinite (message: ``label``, iteration, hint).
    """
    params = objective.parameters()
    device = params[0].device
    opt = torch.optim.Adam(params, lr=lr)
    names = ("loss", *objective.term_names)
    log = torch.empty((iterations, len(names)), dtype=torch.float64, device=device)
    elapsed = np.zeros(iterations)
    check_every = 1 if device.type == "cpu" else 50
    tty = sys.stderr.isatty()
    bar = tqdm(
        total=iterations,
        disable=not progress,
        desc=label,
        unit="it",
        dynamic_ncols=True,
        mininterval=0.5 if tty else 30.0,
        file=sys.stderr,
    )
    checked = 0
    watching = monitor is not None and monitor_every > 0
    monitor_s = 0.0
    threads_before = torch.get_num_threads()
    if objective.main_threads is not None:
        torch.set_num_threads(objective.main_threads)
    start = time.perf_counter()
    try:
        for it in range(iterations):
            idx = sampler.next()
            loss, terms = objective.loss(idx)
            log[it, 0] = loss.detach()
            log[it, 1:] = terms
            if (it + 1) % check_every == 0 or it + 1 == iterations:
                recent = log[checked : it + 1, 0]
                if not bool(torch.isfinite(recent).all()):
                    bad = checked + int(torch.nonzero(~torch.isfinite(recent))[0, 0])
                    raise FitError(
                        f"{label}: the loss is not finite ({float(log[bad, 0])}) at iteration "
                        f"{bad + 1} of {iterations}; nothing was written. Try a smaller lr, or "
                        "check the images and the mask."
                    )
                checked = it + 1
                if progress:
                    bar.set_postfix(loss=f"{float(log[it, 0]):.5f}", refresh=False)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            elapsed[it] = time.perf_counter() - start - monitor_s
            if watching and ((it + 1) % monitor_every == 0 or it + 1 == iterations):
                if device.type == "cuda":
                    torch.cuda.synchronize(device)  # the fitting time up to here, not the queue
                    elapsed[it] = time.perf_counter() - start - monitor_s
                watch_start = time.perf_counter()
                _watch(objective, monitor, it + 1, float(log[it, 0]), float(elapsed[it]))  # type: ignore[arg-type]
                monitor_s += time.perf_counter() - watch_start
            bar.update(1)
    finally:
        bar.close()
        torch.set_num_threads(threads_before)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    wall = time.perf_counter() - start - monitor_s
    values = log.cpu().numpy()
    frame = pd.DataFrame(values, columns=list(names))
    frame.insert(0, "iteration", np.arange(1, iterations + 1))
    frame["elapsed_s"] = elapsed
    return FitLog(frame=frame, wall_s=wall, iterations=iterations, monitor_s=monitor_s)


def make_sampler(params: LoopSettings, seed: int, n_points: int, device: torch.device) -> PointSampler:
    """The batch sampler of a loop block (resolved batch size, its own generator seeded with ``seed``)."""
    return PointSampler(n_points, params.resolve_batch_size(n_points), params.sampling, seed, device)


# ------------------------------------------------------------------------------ a method's fit, the loop
@dataclass
class FitContext(Generic[S]):
    """What a method's ``fit`` gets.

    Attributes:
        case: the converted case.
        mask: (nz, ny, nx) bool T00 lung mask on the case grid.
        settings: the run's settings; ``settings.params`` is the method's own block, typed ``S``.
        device: the resolved device (rnr.runtime.resolve_device).
        label: "case N / configuration (method)", for progress bars and error messages.
        progress: show a progress bar.
        monitor: a watcher of a loop-based fit (:data:`Monitor`; rnr/reporting/curves.py records the accuracy curve with
            it), called every ``settings.params.curve_every`` iterations with the current map. Whatever it
            scores the map against (the landmarks) stays inside it: a method's objective never sees it.
    """

    case: ConvertedCase
    mask: np.ndarray
    settings: Settings[S]
    device: torch.device
    label: str
    progress: bool = True
    monitor: Monitor | None = None


@dataclass
class MethodOutcome:
    """What a method's ``fit`` returns.

    Attributes:
        transform: the fitted map (T00 -> T50).
        log: per-iteration (or per-step) log, written to loss.csv; columns ``iteration``, ``loss``, ...,
            ``elapsed_s``.
        wall_s: seconds spent fitting (data loading and output excluded).
        iterations: iterations (or optimiser steps) done.
        batch_size: points per iteration (None when not point-based).
        n_points: T00-mask voxels used.
        compared_terms: labels of the compared phase terms (rnr.fitting.phases.Term.label).
        extra: anything else for run.json and the checkpoint metadata.
        device: where the method actually ran when that is not the settings' device (demons: the CPU).
    """

    transform: Transform
    log: pd.DataFrame
    wall_s: float
    iterations: int
    batch_size: int | None
    n_points: int
    compared_terms: list[str]
    extra: dict[str, Any] = field(default_factory=dict)
    device: torch.device | None = None

    @property
    def intermediate_used(self) -> bool:
        return len(self.compared_terms) > 1


def fit_with_loop(ctx: FitContext[L], objective: Objective, data: FitData) -> MethodOutcome:
    """Run the project's loop (rnr.fitting.fit.optimise) on a loop-based method's objective with the context's
    settings (``ctx.settings.params`` is a :class:`rnr.config.LoopSettings`: its iterations, batch and lr)."""
    params = ctx.settings.params
    sampler = make_sampler(params, ctx.settings.seed, data.n_points, ctx.device)
    fit = optimise(
        objective,
        sampler,
        params.iterations,
        params.lr,
        progress=ctx.progress,
        label=ctx.label,
        monitor=ctx.monitor,
        monitor_every=params.curve_every,
    )
    return MethodOutcome(
        transform=objective.transform(),
        log=fit.frame,
        wall_s=fit.wall_s,
        iterations=fit.iterations,
        batch_size=sampler.batch_size,
        n_points=data.n_points,
        compared_terms=[t.label for t in data.terms],
        extra={"curve_s": fit.monitor_s} if ctx.monitor is not None and params.curve_every > 0 else {},
    )
