"""What a registration method provides and what it gets: the contract behind the method table.

A method is one module in ``rnr/methods/`` that defines

* its settings block (a frozen dataclass derived from :class:`rnr.config.MethodSettings`, every default in
  it),
* its transform class(es) (:class:`rnr.transform.Transform` subclasses with a unique ``kind``, so that
  checkpoints reload),
* a ``fit(ctx) -> MethodOutcome`` function,

and one :class:`Method` value ``METHOD`` naming them, listed in :data:`rnr.methods.METHODS`. A method fitted
by the project's optimisation loop builds an :class:`rnr.fit.Objective` and calls :func:`rnr.fit.fit_with_loop`.
``fit`` gets a :class:`rnr.fit.FitContext` typed by the method's settings block (``FitContext[RNRSettings]``:
``ctx.settings.params`` is that block, no cast needed) and returns a :class:`rnr.fit.MethodOutcome`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..config import MethodSettings

# What a method's fit gets and returns, and the shared loop, live with the loop (rnr.fit); named here too,
# so that a method module finds its whole contract in this one module.
from ..fit import FitContext, MethodOutcome, fit_with_loop
from ..transform import Transform


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


__all__ = ["FitContext", "Method", "MethodOutcome", "fit_with_loop"]
