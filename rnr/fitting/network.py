"""RNR's deformation: a ResNet of sine residual blocks acting on 3-D points (rnr/methods/README.md, "Network").

phi_0(x) = x, phi_n(x) = phi_{n-1}(x) + F_n(phi_{n-1}(x)), n = 1..N, with
F(z) = W3 sin(W2 sin(W1 z + b1) + b2) + b3 (W1: q x 3, W2: q x q, W3: 3 x q; plain sine, no step factor).
Points are (M, 3) rows in normalised (x, y, z) coordinates (coords.py).

Three ways through the same parameters:

* :meth:`ResNetMap.forward` / :meth:`ResNetMap.trajectory`: plain autograd passes (evaluation, tests).
* :meth:`ResNetMap.jet`: the fitting fast path, one pass giving every phi_n and the squared Frobenius norms
  of the residual Jacobians w.r.t. the original input, with a hand-written backward (rnr/fitting/jet.py).
* :meth:`ResNetMap.steps_and_detj`: evaluation, every phi_n and det J of every phi_n in one pass
  (:meth:`ResNetTransform.map_steps_and_detj`, the folding of every step);
  :meth:`ResNetMap.jacobian`: the closed-form Jacobian of phi_n.

:class:`ResNetTransform` wraps a fitted map as a :class:`rnr.fitting.transform.Transform` (kind ``"rnr"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import coords
from . import jet as _jet
from .transform import DEFAULT_CHUNK, Transform

# Standard deviation of W3 and b3 at initialisation: phi_N starts within ~1e-3 of the identity.
OUTPUT_INIT_STD = 1e-3


class ResidualBlock(nn.Module):
    """F(z) = W3 sin(W2 sin(W1 z + b1) + b2) + b3 on (M, 3) points.

    Initialisation (rnr/methods/README.md): W1, b1, W2, b2 ~ N(0, 1); W3, b3 ~ N(0, 1e-3^2). Parameters are drawn on
    the CPU from ``generator`` in the order W1, b1, W2, b2, W3, b3, so a seed gives the same network on
    every device.
    """

    def __init__(self, width: int = 100, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32):
        super().__init__()

        def draw(*shape: int, std: float = 1.0) -> nn.Parameter:
            return nn.Parameter(torch.randn(*shape, generator=generator, dtype=dtype) * std)

        self.W1 = draw(width, 3)
        self.b1 = draw(width)
        self.W2 = draw(width, width)
        self.b2 = draw(width)
        self.W3 = draw(3, width, std=OUTPUT_INIT_STD)
        self.b3 = draw(3, std=OUTPUT_INIT_STD)

    def params(self) -> _jet.BlockParams:
        """(W1, b1, W2, b2, W3, b3) in the order rnr/fitting/jet.py expects."""
        return self.W1, self.b1, self.W2, self.b2, self.W3, self.b3

    def weight_matrices(self) -> list[torch.Tensor]:
        """W1, W2, W3 (the penalised weights; biases are not penalised)."""
        return [self.W1, self.W2, self.W3]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """F(z): (M, 3) -> (M, 3)."""
        hidden = torch.sin(torch.addmm(self.b1, z, self.W1.t()))
        hidden = torch.sin(torch.addmm(self.b2, hidden, self.W2.t()))
        return torch.addmm(self.b3, hidden, self.W3.t())


class ResNetMap(nn.Module):
    """phi_N = (id + F_N) o ... o (id + F_1) on (M, 3) normalised points.

    Args:
        n_blocks: N, the number of steps (5: one per phase interval T00 -> T10 -> ... -> T50).
        width: q, the hidden width of every block.
        shared_weights: one block reused for every step (a stationary velocity field).
        seed: seeds the CPU generator that draws the initial parameters.
    """

    def __init__(
        self,
        n_blocks: int = 5,
        width: int = 100,
        shared_weights: bool = False,
        seed: int = 3,
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        if n_blocks < 1 or width < 1:
            raise ValueError(f"n_blocks and width must be >= 1, got {n_blocks}, {width}")
        self.n_blocks = int(n_blocks)
        self.width = int(width)
        self.shared_weights = bool(shared_weights)
        generator = torch.Generator().manual_seed(int(seed))
        n_unique = 1 if self.shared_weights else self.n_blocks
        self.blocks = nn.ModuleList(ResidualBlock(width, generator, dtype) for _ in range(n_unique))
        # Buffers of the fast path, reused from one fitting iteration to the next (rnr/fitting/jet.py).
        self._workspace: _jet.Workspace | None = None

    # -- structure ------------------------------------------------------------------------------------
    @property
    def layout(self) -> tuple[int, ...]:
        """For each step n = 1..N the index of the block it uses."""
        return tuple(0 if self.shared_weights else n for n in range(self.n_blocks))

    def block(self, n: int) -> ResidualBlock:
        """The residual block F_n of step n (1-based)."""
        if not 1 <= n <= self.n_blocks:
            raise IndexError(f"step must be in 1..{self.n_blocks}, got {n}")
        return self.blocks[self.layout[n - 1]]  # type: ignore[return-value]

    def weight_matrices(self) -> list[torch.Tensor]:
        """All distinct weight matrices (shared weights counted once)."""
        return [w for block in self.blocks for w in block.weight_matrices()]  # type: ignore[attr-defined]

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def _steps(self, step: int | None) -> int:
        n = self.n_blocks if step is None else int(step)
        if not 0 <= n <= self.n_blocks:
            raise IndexError(f"step must be in 0..{self.n_blocks}, got {step}")
        return n

    # -- plain passes ---------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, step: int | None = None) -> torch.Tensor:
        """phi_step(x): (M, 3) -> (M, 3); ``step=None`` is phi_N, ``step=0`` the identity."""
        z = x
        for n in range(1, self._steps(step) + 1):
            z = z + self.block(n)(z)
        return z

    def trajectory(self, x: torch.Tensor, step: int | None = None) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """One pass: ([phi_0, ..., phi_step], [F_1(phi_0), ..., F_step(phi_{step-1})]), each (M, 3)."""
        phis, residuals = [x], []
        for n in range(1, self._steps(step) + 1):
            f = self.block(n)(phis[-1])
            residuals.append(f)
            phis.append(phis[-1] + f)
        return phis, residuals

    # -- fast paths -----------------------------------------------------------------------------------
    def jet(self, x: torch.Tensor, workers: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Fitting fast path: (phis (N, M, 3) with phis[n-1] = phi_n(x), sq (N,) with
        sq[n-1] = sum_m ||d/dx F_n(phi_{n-1}(x_m))||_F^2). Differentiable w.r.t. the parameters only.

        Buffers are reused between calls: call backward on one result before the next ``jet`` call.
        ``workers``: CPU threads sharing the chunks of points (default ``torch.get_num_threads()``)."""
        self._workspace = _jet.Workspace.for_shape(
            self._workspace, x.shape[0], self.width, self.n_blocks, x.dtype, x.device, workers
        )
        params = [b.params() for b in self.blocks]  # type: ignore[attr-defined]
        return _jet.jet(x, params, self.layout, self._workspace)

    def steps_and_detj(
        self, x: torch.Tensor, step: int | None = None, workers: int | None = None, chunk: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Evaluation pass (no autograd): phi_1..phi_step at x and det J of each, in one chained pass.

        Returns (phis (step, M, 3) in x's dtype, det (step, M) float64), see :func:`rnr.fitting.jet.jet_steps`
        (``workers``: CPU threads, ``chunk``: points per chunk; both default per device)."""
        n = self._steps(step)
        if n == 0:
            raise IndexError("steps_and_detj needs step >= 1")
        blocks = [self.block(k).params() for k in range(1, self.n_blocks + 1)]
        return _jet.jet_steps(x, blocks, n, chunk=chunk, workers=workers)

    def jacobian(self, x: torch.Tensor, step: int | None = None) -> torch.Tensor:
        """Closed-form Jacobian of phi_step at x: (M, 3) -> (M, 3, 3), J[m, i, j] = d phi_i / d x_j."""
        blocks = [self.block(n).params() for n in range(1, self.n_blocks + 1)]
        _, t, _ = _jet.jet_forward(x, blocks, self._steps(step))
        return t.permute(1, 2, 0).contiguous()


class ResNetTransform(Transform):
    """A fitted RNR map as a Transform: phi_step of a :class:`ResNetMap` in normalised coordinates.

    ``n_steps`` = N; ``map_normalised(u, step)`` returns phi_step(u) (step=None: phi_N).
    """

    kind = "rnr"

    def __init__(self, size_xyz: Sequence[int], spacing_xyz: Sequence[float], network: ResNetMap | None = None):
        super().__init__(size_xyz, spacing_xyz)
        self.network = network if network is not None else ResNetMap()
        self.network.requires_grad_(False)
        self.n_steps = self.network.n_blocks
        self.device = next(self.network.parameters()).device

    def map_normalised(self, u: torch.Tensor, step: int | None = None) -> torch.Tensor:
        return self.network(u.to(self.device), step)

    def jacobian_normalised(self, u: torch.Tensor, step: int | None = None) -> torch.Tensor:
        """Closed form (chained block Jacobians), not autograd: (M, 3) -> (M, 3, 3)."""
        return self.network.jacobian(u.to(self.device), step)

    def map_steps_and_detj(
        self, points_vox: np.ndarray, chunk: int = DEFAULT_CHUNK, *, workers: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """phi_1..phi_N and det J of each at (M, 3) 0-based voxel points in ONE chained pass per chunk of
        points (closed-form Jacobians carried through the blocks, rnr/fitting/jet.py), on this transform's device.

        Returns (mapped (N, M, 3) float64 voxels, detj (N, M) float64), as :meth:`Transform.map_steps_and_detj`.
        ``chunk``: points sent to the device per pass (within a pass the CPU uses cache-sized chunks shared by
        ``workers`` threads, default ``torch.get_num_threads()``)."""
        return self._steps_voxels(points_vox, self.n_steps, chunk, workers)

    def jacobian_det_voxels(
        self, points: np.ndarray, step: int | None = None, chunk: int = DEFAULT_CHUNK
    ) -> np.ndarray:
        """det J of phi_step at (M, 3) 0-based voxel points -> (M,) float64, by the same one pass (through
        the first ``step`` blocks only)."""
        n = self.n_steps if step is None else int(step)
        if n == 0:  # phi_0 is the identity
            return np.ones(len(np.asarray(points).reshape(-1, 3)), dtype=np.float64)
        return self._steps_voxels(points, n, chunk, None)[1][-1]

    def _steps_voxels(
        self, points_vox: np.ndarray, n_steps: int, chunk: int, workers: int | None
    ) -> tuple[np.ndarray, np.ndarray]:
        points = np.asarray(points_vox, dtype=np.float64).reshape(-1, 3)
        m = len(points)
        mapped = np.empty((n_steps, m, 3), dtype=np.float64)
        detj = np.empty((n_steps, m), dtype=np.float64)
        dtype = next(self.network.parameters()).dtype
        for start in range(0, m, max(1, int(chunk))):
            stop = min(m, start + int(chunk))
            # Normalise in float64, then round once to the network's dtype.
            u = torch.as_tensor(coords.voxel_to_normalised(points[start:stop], self.size_xyz), dtype=dtype)
            phis, det = self.network.steps_and_detj(u.to(self.device), n_steps, workers=workers)
            mapped[:, start:stop] = phis.to("cpu", torch.float64).numpy()
            detj[:, start:stop] = det.cpu().numpy()
        mapped = coords.normalised_to_voxel(mapped.reshape(-1, 3), self.size_xyz).reshape(n_steps, m, 3)
        return mapped, detj

    def state(self) -> dict[str, Any]:
        return {
            "n_blocks": self.network.n_blocks,
            "width": self.network.width,
            "shared_weights": self.network.shared_weights,
            "weights": {k: v.detach().cpu() for k, v in self.network.state_dict().items()},
        }

    @classmethod
    def from_state(
        cls, state: dict[str, Any], size_xyz: Sequence[int], spacing_xyz: Sequence[float], device: torch.device
    ) -> ResNetTransform:
        weights = state["weights"]
        dtype = next(iter(weights.values())).dtype
        network = ResNetMap(state["n_blocks"], state["width"], state["shared_weights"], dtype=dtype)
        network.load_state_dict(weights)
        return cls(size_xyz, spacing_xyz, network).to(device)

    def to(self, device: torch.device | str) -> ResNetTransform:
        self.device = torch.device(device)
        self.network.to(self.device)
        return self
