"""IDIR baseline (Wolterink, Zwienenberg and Brune, MIDL 2022), written from its published description.

An implicit neural representation of the deformation: a SIREN predicts a displacement u(x) at normalised
points x (coords.py), and phi(x) = x + u(x). Roles are RNR's (rnr/methods/README.md): T50 is the warped image, sampled
at phi(x) for x on T00-mask voxel centres, compared with T00 at x; no intermediate phases.

* **Network**: 3 -> 256 -> 256 -> 256 -> 3: three sine layers h = sin(omega0 (W h + b)) with omega0 = 32 in
  every one, then a linear output layer. SIREN initialisation (Sitzmann et al. 2020): first layer
  W ~ U(-1/3, 1/3) (1/fan_in), every later layer (the output layer included)
  W ~ U(-sqrt(6/fan_in)/omega0, +sqrt(6/fan_in)/omega0); biases keep torch's nn.Linear default
  U(-1/sqrt(fan_in), 1/sqrt(fan_in)), as in the SIREN reference implementation. Parameters are drawn on the
  CPU from a generator seeded with ``seed``, so a seed gives the same network on every device.
* **Loss**: (1 - NCC(T50(phi(x)), T00(x))) + alpha * B, with NCC the project's global NCC
  (:func:`rnr.fitting.losses.ncc`), T50 sampled trilinearly with border clamping (rnr.fitting.sampling), and B
  the bending energy of u:
  B = mean over the batch of sum_k ||Hess u_k(x)||_F^2 = sum_k sum_{i,j} (d^2 u_k / dx_i dx_j)^2 -- the full
  3 x 3 Hessian of every displacement component, so each mixed derivative is counted twice. alpha = 1e-3
  on that mean: the public IDIR code's effective weight, its bending weight 10 relative to its batch of
  10,000 points (10 / 10,000). Derivatives are with respect to normalised coordinates.
* **Optimisation** (IDIR's defaults, :class:`IDIRSettings`): Adam, learning rate 1e-5, 2500 iterations of
  10,000 fresh random T00-mask points.

It plugs into the project's loop as :class:`IDIRObjective` (rnr.fitting.fit: sampling of fresh random mask points,
Adam, device, seed, progress, loss log and run outputs are RNR's); :data:`METHOD` is its row of the method
table, so ``rnr register --set method=idir`` and a configuration ``{method: idir}`` use it. Settings: the
loop keys ``lr``, ``iterations``, ``batch_size``, ``sampling`` (IDIR's defaults), plus ``alpha_bending``,
``omega0``, ``idir_width``; no intermediate phases.

The bending energy is computed exactly. :func:`bending_energy` does it by autograd second derivatives for
any differentiable displacement function (tested against closed-form fields); :meth:`Siren.jet` is the
fitting fast path, a forward pass that carries the Jacobian and Hessian of every layer in closed form
(tested against :func:`bending_energy`); on a 2-core CPU it took about half the time of double backward
(10,000 points, width 256: ~4-7 s against ~9-20 s per iteration, forward and backward).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from ..config import Settings
from ..fitting.fit import FitContext, MethodOutcome, Objective, fit_with_loop
from ..fitting.fit_data import FitData, prepare_data
from ..fitting.losses import dissimilarity
from ..fitting.phases import compared_terms
from ..fitting.sampling import sample_volumes
from ..fitting.transform import Transform
from .base import Method
from .settings import IDIRSettings

#: Sine layers of the SIREN (an architecture constant, not a setting).
N_HIDDEN = 3


# (i, j) index pairs of the 6 distinct Hessian entries, and their multiplicity in the full 3 x 3 sum.
_HESS_PAIRS = ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))
_HESS_WEIGHT = (1.0, 1.0, 1.0, 2.0, 2.0, 2.0)
_PAIR_INDEX = (torch.tensor([i for i, _ in _HESS_PAIRS]), torch.tensor([j for _, j in _HESS_PAIRS]))


# ------------------------------------------------------------------------------------------- bending energy
def bending_energy(
    displacement: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, create_graph: bool = True
) -> torch.Tensor:
    """Mean over points of sum_k ||Hessian of u_k||_F^2 (full 3 x 3 Hessians: mixed terms count twice).

    Generic and exact: autograd second derivatives of any twice-differentiable ``displacement``
    (M, 3) -> (M, 3) that acts on each point independently. ``x``: (M, 3) points. Returns a scalar tensor,
    differentiable w.r.t. the parameters of ``displacement`` when ``create_graph``.
    """
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        u = displacement(x)
        total = x.new_zeros(x.shape[0])
        for k in range(u.shape[1]):
            # materialize_grads: a component or derivative that does not depend on x has zero derivative.
            grad = torch.autograd.grad(u[:, k].sum(), x, create_graph=True, materialize_grads=True)[0]
            if not grad.requires_grad:  # u_k is affine in x: its Hessian is zero
                continue
            for i in range(x.shape[1]):
                row = torch.autograd.grad(
                    grad[:, i].sum(), x, create_graph=create_graph, retain_graph=True, materialize_grads=True
                )[0]
                total = total + row.square().sum(dim=1)
    return total.mean()


# ---------------------------------------------------------------------------------------------- network
class Siren(nn.Module):
    """u(x): (M, 3) normalised points -> (M, 3) displacement in normalised units (module docstring).

    Args:
        width: hidden width (256).
        n_hidden: number of sine layers (3).
        omega0: frequency factor in every sine layer (32).
        seed: seeds the CPU generator for the SIREN initialisation.
    """

    def __init__(
        self,
        width: int = IDIRSettings.idir_width,
        n_hidden: int = N_HIDDEN,
        omega0: float = IDIRSettings.omega0,
        seed: int = 3,
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        if width < 1 or n_hidden < 1 or omega0 <= 0:
            raise ValueError(f"Siren needs width >= 1, n_hidden >= 1, omega0 > 0; got {width}, {n_hidden}, {omega0}")
        self.width, self.n_hidden, self.omega0 = int(width), int(n_hidden), float(omega0)
        generator = torch.Generator().manual_seed(int(seed))
        dims = [3] + [self.width] * self.n_hidden + [3]
        self.layers = nn.ModuleList()
        for n, (fan_in, fan_out) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
            layer = nn.Linear(fan_in, fan_out, dtype=dtype)
            bound = 1.0 / fan_in if n == 0 else math.sqrt(6.0 / fan_in) / self.omega0
            bias_bound = 1.0 / math.sqrt(fan_in)
            with torch.no_grad():
                layer.weight.copy_(
                    torch.empty(fan_out, fan_in, dtype=dtype).uniform_(-bound, bound, generator=generator)
                )
                layer.bias.copy_(
                    torch.empty(fan_out, dtype=dtype).uniform_(-bias_bound, bias_bound, generator=generator)
                )
            self.layers.append(layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """u(x): (M, 3) -> (M, 3)."""
        h = x
        for layer in self.layers[:-1]:
            h = torch.sin(self.omega0 * layer(h))
        return self.layers[-1](h)

    def jet(self, x: torch.Tensor, hessian: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One forward pass carrying second-order information in closed form.

        Returns (u (M, 3), hess (6, M, 3) or None): ``hess[p, m, k]`` = d^2 u_k / dx_i dx_j at point m for the
        p-th pair (i, j) of ``_HESS_PAIRS`` = (00, 11, 22, 01, 02, 12). Differentiable w.r.t. the parameters
        by ordinary (first-order) autograd.

        Through a ``sin(omega0 (W h + b))`` layer with pre-activation a: tangents t_j (d/dx_j) and Hessian
        entries s_ij are linear (t -> omega0 t W^T, s -> omega0 s W^T), and after the sine
        t_j -> cos(a) t_j, s_ij -> cos(a) s_ij - sin(a) t_i t_j.
        """
        first = self.layers[0]
        a = self.omega0 * first(x)  # (M, q)
        w = self.omega0 * first.weight.t()  # (3, q): d a / d x_j, per point
        sin_a, cos_a = torch.sin(a), torch.cos(a)
        h = sin_a
        if not hessian:
            for layer in self.layers[1:-1]:
                h = torch.sin(self.omega0 * layer(h))
            return self.layers[-1](h), None
        left, right = _PAIR_INDEX
        tang = cos_a.unsqueeze(0) * w.unsqueeze(1)  # (3, M, q)
        hess = -sin_a * (w[left] * w[right]).unsqueeze(1)  # (6, M, q)
        for layer in self.layers[1:-1]:
            # Separate products (not one over a stacked tensor): slicing a stacked result would make
            # autograd allocate and zero-fill the whole stack once per slice in the backward.
            weight_t = self.omega0 * layer.weight.t()
            a = torch.addmm(self.omega0 * layer.bias, h, weight_t)
            ta = torch.matmul(tang, weight_t)
            sa = torch.matmul(hess, weight_t)
            sin_a, cos_a = torch.sin(a), torch.cos(a)
            h = sin_a
            hess = cos_a * sa - sin_a * (ta[left] * ta[right])
            tang = cos_a * ta
        last = self.layers[-1]
        return last(h), torch.matmul(hess, last.weight.t())

    def bending_energy(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(u(x) (M, 3), B) with B the bending energy of :func:`bending_energy`, by the closed-form jet."""
        u, hess = self.jet(x)
        assert hess is not None
        weights = torch.tensor(_HESS_WEIGHT, dtype=hess.dtype, device=hess.device)
        per_point = (hess.square().sum(dim=2) * weights[:, None]).sum(dim=0)  # (M,)
        return u, per_point.mean()


# ---------------------------------------------------------------------------------------------- transform
class SirenTransform(Transform):
    """A fitted IDIR map as a Transform: phi(u) = u + Siren(u) in normalised coordinates (kind ``"idir"``)."""

    kind = "idir"

    def __init__(self, size_xyz: Sequence[int], spacing_xyz: Sequence[float], network: Siren | None = None):
        super().__init__(size_xyz, spacing_xyz)
        self.network = network if network is not None else Siren()
        self.network.requires_grad_(False)
        self.device = next(self.network.parameters()).device

    def map_normalised(self, u: torch.Tensor, step: int | None = None) -> torch.Tensor:
        u = u.to(self.device)
        return u + self.network(u)

    def state(self) -> dict[str, Any]:
        return {
            "width": self.network.width,
            "n_hidden": self.network.n_hidden,
            "omega0": self.network.omega0,
            "weights": {k: v.detach().cpu() for k, v in self.network.state_dict().items()},
        }

    @classmethod
    def from_state(
        cls, state: dict[str, Any], size_xyz: Sequence[int], spacing_xyz: Sequence[float], device: torch.device
    ) -> SirenTransform:
        weights = state["weights"]
        dtype = next(iter(weights.values())).dtype
        network = Siren(state["width"], state["n_hidden"], state["omega0"], dtype=dtype)
        network.load_state_dict(weights)
        return cls(size_xyz, spacing_xyz, network).to(device)

    def to(self, device: torch.device | str) -> SirenTransform:
        self.device = torch.device(device)
        self.network.to(self.device)
        return self


# ---------------------------------------------------------------------------------------------- objective
def idir_energy(
    network: Siren,
    x: torch.Tensor,
    fixed_values: torch.Tensor,
    sample_moving: Callable[[torch.Tensor], torch.Tensor],
    alpha_bending: float = IDIRSettings.alpha_bending,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """IDIR's loss on one batch: (1 - NCC(moving(phi(x)), fixed(x))) + alpha * bending energy of u.

    Args:
        network: the SIREN u.
        x: (B, 3) normalised T00-mask points.
        fixed_values: (B,) T00 intensities at x.
        sample_moving: normalised points (B, 3) -> (B,) T50 intensities (trilinear, border-clamped).
        alpha_bending: weight of the bending energy (1e-3 on the point-mean: the public code's effective
            value); 0 skips the Hessian altogether.
    Returns:
        (loss, dissimilarity 1 - NCC, bending energy B), scalar tensors; B is NaN when not computed.
    """
    if alpha_bending > 0:
        u, bend = network.bending_energy(x)
    else:
        u, _ = network.jet(x, hessian=False)
        bend = x.new_full((), math.nan)
    dis = dissimilarity(sample_moving(x + u), fixed_values)
    loss = dis + alpha_bending * bend if alpha_bending > 0 else dis
    return loss, dis, bend


class IDIRObjective(Objective):
    """IDIR's model and loss for the project's loop (rnr.fitting.fit.optimise): a Siren on the fitting device.

    Uses the T50 -> T00 term of :class:`rnr.fitting.fit_data.FitData` only (``data.terms`` must be that one term).
    Logged terms: ``dissimilarity`` (1 - NCC) and ``bending`` (B, before the weight alpha).
    """

    term_names = ("dissimilarity", "bending")

    def __init__(self, data: FitData, settings: Settings[IDIRSettings]):
        if len(data.terms) != 1 or (data.terms[0].moving, data.terms[0].fixed) != ("T50", "T00"):
            raise ValueError(f"IDIR compares T50 with T00 only; got terms {[t.label for t in data.terms]}")
        self.data = data
        self.settings = settings
        device = data.points.device
        self.params = settings.params
        self.model = Siren(self.params.idir_width, N_HIDDEN, self.params.omega0, settings.seed).to(device)

    def parameters(self) -> list[torch.Tensor]:
        return list(self.model.parameters())

    def loss(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.data.points[idx]
        fixed = self.data.fixed[0, idx]
        loss, dis, bend = idir_energy(self.model, x, fixed, self._sample_moving, self.params.alpha_bending)
        return loss, torch.stack([dis, bend]).detach()

    def _sample_moving(self, points: torch.Tensor) -> torch.Tensor:
        return sample_volumes(self.data.moving, points.unsqueeze(0))[0]

    def transform(self) -> Transform:
        return SirenTransform(self.data.size_xyz, self.data.spacing_xyz, self.model)


def fit(ctx: FitContext[IDIRSettings]) -> MethodOutcome:
    """IDIR on one case: the project's loop on :class:`IDIRObjective` (T50 at phi(x) vs T00 at x only)."""
    data = prepare_data(ctx.case, ctx.mask, compared_terms("seed", False, 1), ctx.device)
    return fit_with_loop(ctx, IDIRObjective(data, ctx.settings), data)


METHOD = Method(
    name="idir",
    settings=IDIRSettings,
    fit=fit,
    transforms=(SirenTransform,),
    summary="IDIR baseline: SIREN displacement, NCC + bending energy (Wolterink et al. 2022)",
)
