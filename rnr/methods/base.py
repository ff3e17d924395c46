"""What a registration method provides and what it gets: the contract behind the method table.

A method is one module in ``rnr/methods/`` that defines

* its settings block (a frozen dataclass derived from :class:`rnr.config.MethodSettings`, every default in
  it),
* its transform class(es) (:class:`rnr.fitting.transform.Transform` subclasses with a unique ``kind``, so that
  checkpoints reload),
* a ``fit(ctx) -> MethodOutcome`` function,

and one :class:`Method` value ``METHOD`` naming them, listed in :data:`rnr.methods.table.METHODS`. A method fitted
by the project's optimisation loop builds an :class:`rnr.fitting.fit.Objective` and calls
:func:`rnr.fitting.fit.fit_with_loop`.
``fit`` gets a :class:`rnr.fitting.fit.FitContext` typed by the method's settings block (``FitContext[RNRSettings]``:
``ctx.settings.params`` is that block, no cast needed) and returns a :class:`rnr.fitting.fit.MethodOutcome`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..config import MethodSettings, SettingsError

# What a method's fit gets and returns, and the shared loop, live with the loop (rnr.fitting.fit); named here too,
# so that a method module finds its whole contract in this one module.
from ..fitting.fit import FitContext, MethodOutcome, fit_with_loop
from ..fitting.phases import compared_terms
from ..fitting.transform import Transform


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
    fit: Callable[[FitContext[Any]], MethodOutcome]
    transforms: tuple[type[Transform], ...]
    summary: str


__all__ = ["FitContext", "Method", "MethodOutcome", "fit_with_loop", "import_extra", "pair_outcome"]


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
