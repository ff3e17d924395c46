"""The identity map phi(x) = x: "no registration", the configuration ``initial`` of every table.

``rnr evaluate --identity`` scores it without a run folder; as a method (``{method: identity}``) it also runs
through ``rnr register`` like any other, which the tests use to check the method table end to end.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..fitting.phases import compared_terms
from ..fitting.transform import IdentityTransform
from .base import FitContext, Method, MethodOutcome
from .settings import IdentitySettings


def fit(ctx: FitContext[IdentitySettings]) -> MethodOutcome:
    """Nothing to fit: the identity on the case's grid, an empty log."""
    return MethodOutcome(
        transform=IdentityTransform(ctx.case.size_xyz, ctx.case.spacing_xyz).to(ctx.device),
        log=pd.DataFrame({"iteration": [], "loss": [], "elapsed_s": []}),
        wall_s=0.0,
        iterations=0,
        batch_size=None,
        n_points=int(np.count_nonzero(ctx.mask)),
        compared_terms=[t.label for t in compared_terms("seed", False, 1)],
    )


METHOD = Method(
    name="identity",
    settings=IdentitySettings,
    fit=fit,
    transforms=(IdentityTransform,),
    summary="the identity map (no registration): the 'initial' column of every table",
)
