"""The straightforward formulation of RNR's energy: the TEST AND BENCHMARK REFERENCE, never used to fit.

This is the energy of rnr/methods/README.md written the obvious way, as the public reference code does: for every step
n a separate forward pass from x through blocks 1..n (15 block evaluations for N = 5), and the Jacobian of
the n-th residual with respect to the original x built row by row with three autograd calls that keep the
graph (``create_graph=True``) so that the penalty can be differentiated again. Everything else (sampling,
NCC, weight penalty, the way terms are combined, the loop) is shared with :class:`rnr.methods.rnr.RNRObjective`,
so comparing the two isolates the one-pass jet of rnr/fitting/jet.py.

Used by ``tests/test_fit.py`` (loss and parameter gradients must agree to float precision) and by
``rnr bench`` (timing and the same equality check on the first iteration).
"""

from __future__ import annotations

import math

import torch

from ..fitting import losses
from ..fitting.network import ResNetMap
from .rnr import RNRObjective


def reference_passes(model: ResNetMap, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Separate passes per step with autograd Jacobians.

    Args:
        model: the ResNet. x: (M, 3) points.
    Returns:
        phis: (N, M, 3), phis[n-1] = phi_n(x);
        jacobians: (N, M, 3, 3), jacobians[n-1, m, i, j] = d F_n(phi_{n-1}(x_m))_i / d x_j, differentiable
        w.r.t. the parameters.
    """
    phis, jacobians = [], []
    for n in range(1, model.n_blocks + 1):
        leaf = x.detach().clone().requires_grad_(True)  # a fresh pass from the original points
        z = leaf
        for k in range(1, n):
            z = z + model.block(k)(z)
        f = model.block(n)(z)
        phis.append(z + f)
        rows = [torch.autograd.grad(f[:, i].sum(), leaf, create_graph=True)[0] for i in range(3)]
        jacobians.append(torch.stack(rows, dim=1))
    return torch.stack(phis), torch.stack(jacobians)


def reference_passes_without_jacobians(model: ResNetMap, x: torch.Tensor) -> torch.Tensor:
    """Separate passes per step, phis only: (N, M, 3) (the alpha_grad = 0 case)."""
    return torch.stack([model(x, n) for n in range(1, model.n_blocks + 1)])


class ReferenceRNRObjective(RNRObjective):
    """:class:`rnr.methods.rnr.RNRObjective` with the straightforward passes instead of the jet, run the way such
    code runs: every kernel on torch's default intra-op threads."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.main_threads = None

    def phis_and_penalty(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.params.alpha_grad > 0:
            phis, jacobians = reference_passes(self.model, x)
            return phis, losses.gradient_penalty(jacobians)
        return reference_passes_without_jacobians(self.model, x), x.new_full((), math.nan)
