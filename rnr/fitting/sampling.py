"""Sampling for the fitting loop: image intensities at points, and which mask points form each batch.

* :func:`sample_volumes`: trilinear interpolation with border clamping (edge value outside the volume) of
  (z, y, x) volumes at normalised (x, y, z) points -- ``grid_sample(align_corners=True,
  padding_mode='border')``, exactly the normalised convention of coords.py. Differentiable w.r.t. the
  points.
* :class:`PointSampler`: the indices of the mask points in each batch, ``random`` (a fresh uniform batch
  every iteration) or ``cycle`` (consecutive slices of one shuffled order of all mask points, wrapping
  around), drawn from its own seeded generator on the fitting device (no global RNG state, no host copies).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SAMPLINGS = ("random", "cycle")


def sample_volumes(volumes: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Intensities of K volumes at normalised points.

    Args:
        volumes: (K, nz, ny, nx) volumes (a single (nz, ny, nx) volume is K = 1).
        points: (K, M, 3) normalised (x, y, z) points, row k sampled in volume k; or (S, M, 3) with K = 1,
            all S rows sampled in the one volume (one grid_sample call either way).
    Returns:
        (K or S, M) intensities, dtype of ``volumes``.
    """
    if volumes.dim() == 3:
        volumes = volumes.unsqueeze(0)
    k = volumes.shape[0]
    s, m = points.shape[:2]
    if k == 1:
        grid = points.reshape(1, 1, 1, s * m, 3)
    elif k == s:
        grid = points.reshape(k, 1, 1, m, 3)
    else:
        raise ValueError(f"points (S={s}, M, 3) need S = K = {k} volumes, or a single volume")
    out = F.grid_sample(
        volumes.unsqueeze(1), grid.to(volumes.dtype), mode="bilinear", padding_mode="border", align_corners=True
    )
    return out.reshape(s, m)


class PointSampler:
    """Indices into the N mask points for each batch.

    Args:
        n_points: N, the number of mask points.
        batch_size: points per batch (at most N).
        mode: ``random``: a fresh batch every iteration, uniform over the mask points (with replacement:
            duplicates are rare when the batch is much smaller than the mask, and drawing is O(batch));
            ``cycle``: one random permutation drawn once, batches are its consecutive slices, wrapping around
            (every point is used equally often; the reference run script's sampling).
        seed: seeds this sampler's own generator.
        device: where the indices live (the generator too, so no host-device copy is needed).
    """

    def __init__(
        self, n_points: int, batch_size: int, mode: str = "random", seed: int = 3, device: torch.device | str = "cpu"
    ):
        if mode not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {', '.join(SAMPLINGS)}, got {mode!r}")
        if not 1 <= batch_size <= n_points:
            raise ValueError(f"batch_size must be in 1..{n_points} (the number of mask points), got {batch_size}")
        self.n_points = int(n_points)
        self.batch_size = int(batch_size)
        self.mode = mode
        self.device = torch.device(device)
        self.generator = torch.Generator(device=self.device).manual_seed(int(seed))
        self._offset = 0
        self._order: torch.Tensor | None = None
        self._arange: torch.Tensor | None = None
        if mode == "cycle":
            self._order = torch.randperm(self.n_points, generator=self.generator, device=self.device)
            self._arange = torch.arange(self.batch_size, device=self.device)

    def next(self) -> torch.Tensor:
        """Indices of the next batch: (batch_size,) int64 on the sampler's device."""
        if self.mode == "random":
            return torch.randint(self.n_points, (self.batch_size,), generator=self.generator, device=self.device)
        assert self._order is not None and self._arange is not None
        if self._offset + self.batch_size <= self.n_points:
            idx = self._order[self._offset : self._offset + self.batch_size]
        else:  # wrap around the end of the permutation
            idx = self._order[(self._arange + self._offset) % self.n_points]
        self._offset = (self._offset + self.batch_size) % self.n_points
        return idx
