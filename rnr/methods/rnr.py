"""RNR: a ResNet of sine residual blocks acting on 3-D points, fitted per case (rnr/methods/README.md).

This module is RNR's room in the method table: its settings (:class:`RNRSettings`, the method defaults),
its objective (:class:`RNRObjective`: mean_n D_n + alpha_grad * P + alpha_W * S, one jet pass per batch),
and ``fit``. The network, its closed-form Jacobians and the transform (kind ``"rnr"``) live in
rnr/fitting/network.py and rnr/fitting/jet.py, which the objective and the transform share.
"""

from __future__ import annotations

import math

import torch

from ..config import Settings
from ..fitting import losses
from ..fitting.fit import FitContext, MethodOutcome, Objective, fit_with_loop
from ..fitting.fit_data import FitData, prepare_data
from ..fitting.network import ResNetMap, ResNetTransform
from ..fitting.phases import compared_terms
from ..fitting.sampling import sample_volumes
from ..fitting.transform import Transform
from .base import Method
from .settings import RNRSettings


class RNRObjective(Objective):
    """RNR's energy (rnr/methods/README.md): mean_n D_n + alpha_grad * P + alpha_W * S, via one jet pass.

    Threads on the CPU: the jet shares its chunks of points out to ``torch.get_num_threads()`` (at
    construction) single-threaded workers, and everything else in the loop (sampling, NCC, Adam on 54k
    parameters: small kernels that gain nothing from several threads) runs single-threaded. This avoids an
    OpenMP barrier per small kernel, which on a busy shared machine costs a scheduler time slice each.
    """

    def __init__(self, data: FitData, settings: Settings[RNRSettings], dtype: torch.dtype = torch.float32):
        self.data = data
        self.settings = settings
        self.params = settings.params
        device = data.points.device
        self.workers = torch.get_num_threads() if device.type == "cpu" else 1
        self.main_threads = 1 if device.type == "cpu" else None
        p = self.params
        self.model = ResNetMap(p.n_blocks, p.width, p.shared_weights, settings.seed, dtype=dtype).to(device)
        self._steps = torch.as_tensor([s - 1 for s in data.steps], device=device)
        self.term_names = (
            "dissimilarity",
            "grad_penalty",
            "weight_penalty",
            *(f"dissimilarity_{t.label}" for t in data.terms),
        )

    def parameters(self) -> list[torch.Tensor]:
        return list(self.model.parameters())

    def phis_and_penalty(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(phis (N, B, 3) with phis[n-1] = phi_n(x), P ()); P is NaN (not computed) when alpha_grad = 0."""
        if self.params.alpha_grad > 0:
            phis, sq = self.model.jet(x, self.workers)
            return phis, losses.gradient_penalty_from_sums(sq, x.shape[0])
        return torch.stack(self.model.trajectory(x)[0][1:]), x.new_full((), math.nan)

    def loss(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.data.points[idx].to(self.model.blocks[0].W1.dtype)
        phis, penalty = self.phis_and_penalty(x)
        return self.combine(idx, phis, penalty)

    def combine(
        self, idx: torch.Tensor, phis: torch.Tensor, penalty: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The energy from the warped points phis (N, B, 3) and the gradient penalty P."""
        warped = sample_volumes(self.data.moving, phis[self._steps]).to(phis.dtype)  # (S, B)
        fixed = self.data.fixed[:, idx].to(phis.dtype)
        d_terms = losses.dissimilarity(warped, fixed)  # (S,)
        d = d_terms.mean()
        s = losses.weight_penalty(self.model.weight_matrices())
        total = d + self.params.alpha_weight * s
        if self.params.alpha_grad > 0:
            total = total + self.params.alpha_grad * penalty
        terms = torch.cat([torch.stack([d, penalty, s]), d_terms]).detach()
        return total, terms

    def transform(self) -> Transform:
        return ResNetTransform(self.data.size_xyz, self.data.spacing_xyz, self.model)


def rnr_data(ctx: FitContext[RNRSettings]) -> FitData:
    """The compared terms of these settings on this case, loaded onto the device."""
    params = ctx.settings.params
    use_intermediate = params.intermediate and ctx.case.has_intermediate
    terms = compared_terms(params.pairing, use_intermediate, params.n_blocks)
    return prepare_data(ctx.case, ctx.mask, terms, ctx.device)


def fit(ctx: FitContext[RNRSettings]) -> MethodOutcome:
    """RNR on one case: the project's loop on :class:`RNRObjective`."""
    data = rnr_data(ctx)
    return fit_with_loop(ctx, RNRObjective(data, ctx.settings), data)


METHOD = Method(
    name="rnr",
    settings=RNRSettings,
    fit=fit,
    transforms=(ResNetTransform,),
    summary="RNR: ResNet of sine blocks, NCC + gradient penalty + weight penalty, optional intermediate phases",
)
