"""What a registration method provides and what it gets: the contract behind the method table.

A method is one module in ``rnr/methods/`` that defines

* its settings block (a frozen dataclass derived from :class:`rnr.config.MethodSettings`, every default in
  it),
* its transform class(es) (:class:`rnr.transform.Transform` subclasses with a unique ``kind``, so that
  checkpoints reload),
* a ``fit(ctx) -> MethodOutcome`` function,

and one :class:`Method` value ``METHOD`` naming them, listed in :data:`rnr.methods.METHODS`. A method fitted
by the project's optimisation loop builds an :class:`rnr.fit.Objective` and calls :func:`fit_with_loop`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..case import ConvertedCase
from ..config import MethodSettings, Settings, SettingsError
from ..fit import Objective, make_sampler, optimise
from ..fit_data import FitData
from ..phases import compared_terms
from ..transform import Transform


@dataclass
class FitContext:
    """What a method's ``fit`` gets.

    Attributes:
        case: the converted case.
        mask: (nz, ny, nx) bool T00 lung mask on the case grid.
        settings: the run's settings (``settings.params`` is the method's own block).
        device: the resolved device (rnr.runtime.resolve_device).
        label: "case N / configuration (method)", for progress bars and error messages.
        progress: show a progress bar.
    """

    case: ConvertedCase
    mask: np.ndarray
    settings: Settings
    device: torch.device
    label: str
    progress: bool = True


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
        compared_terms: labels of the compared phase terms (rnr.phases.Term.label).
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


@dataclass(frozen=True)
class Method:
    """One row of the method table.

    Attributes:
        name: the ``method`` setting that selects it.
        settings: its settings block class (defaults in one place).
        fit: ``FitContext -> MethodOutcome``.
        transforms: the Transform classes its checkpoints hold (looked up by their ``kind``).
        summary: one line for ``rnr register --help`` and the docs.
    """

    name: str
    settings: type[MethodSettings]
    fit: Callable[[FitContext], MethodOutcome]
    transforms: tuple[type[Transform], ...]
    summary: str


def fit_with_loop(ctx: FitContext, objective: Objective, data: FitData) -> MethodOutcome:
    """Run the project's loop (rnr.fit.optimise) on a loop-based method's objective with the context's
    settings (``ctx.settings.params`` must be a :class:`rnr.config.LoopSettings`)."""
    params = ctx.settings.params
    sampler = make_sampler(params, ctx.settings.seed, data.n_points, ctx.device)
    fit = optimise(objective, sampler, params.iterations, params.lr, progress=ctx.progress, label=ctx.label)
    return MethodOutcome(
        transform=objective.transform(),
        log=fit.frame,
        wall_s=fit.wall_s,
        iterations=fit.iterations,
        batch_size=sampler.batch_size,
        n_points=data.n_points,
        compared_terms=[t.label for t in data.terms],
    )


#: The optional dependency group (pyproject.toml) that holds the packages of the classical baselines.
BASELINES_EXTRA = "baselines"


def import_extra(module: str, method: str, package: str, extra: str = BASELINES_EXTRA) -> ModuleType:
    """Import ``module`` of an optional package a method needs; without it, a one-line
    :class:`~rnr.config.SettingsError` naming the method, the package and the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise SettingsError(
            f"method {method!r} needs the package {package} ({exc.msg}); install it with "
            f'pip install -e ".[{extra}]" (or pip install "rnr[{extra}]")'
        ) from None


def pair_outcome(
    ctx: FitContext,
    transform: Transform,
    wall_s: float,
    *,
    log: pd.DataFrame | None = None,
    iterations: int = 0,
    extra: dict[str, Any] | None = None,
    device: torch.device | None = None,
) -> MethodOutcome:
    """The outcome of a method that registers T50 to T00 alone, outside the project's loop (a tool or a file):
    no batches, the T00 mask's voxel count as ``n_points``, the one T50-vs-T00 term. ``log`` defaults to an
    empty log (the tool reports none)."""
    if log is None:
        log = pd.DataFrame({"iteration": [], "loss": [], "elapsed_s": []})
    return MethodOutcome(
        transform=transform,
        log=log,
        wall_s=wall_s,
        iterations=iterations,
        batch_size=None,
        n_points=int(np.count_nonzero(ctx.mask)),
        compared_terms=[t.label for t in compared_terms("seed", False, 1)],
        extra=dict(extra or {}),
        device=device,
    )
