"""Small synthetic cases with a known motion, for the sign-and-size tests of the classical baselines
(tests/test_methods_elastix.py, tests/test_methods_ants.py).

The T00 image is a sum of Gaussian blobs (vessel-like bright spots, 600 HU above air, sigma 3 mm) at fixed
positions; the T50 image is the same blobs carried by a known map phi (T00 point -> T50 position), written in
closed form: T50(y) = T00(psi(y)) with psi = phi^-1 given analytically, and phi evaluated by fixed-point
iteration of phi(x) = x + u(phi(x)) (a contraction: the motion's largest slope is below 1/2).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

SIZE = (40, 32, 24)  # (nx, ny, nz) voxels
SPACING = (1.0, 1.5, 2.5)  # mm, anisotropic like DIR-Lab
BLOB_SIGMA_MM = 3.0


def _centres(size_xyz: Sequence[int], spacing_xyz: Sequence[float], n: int = 16, seed: int = 0) -> np.ndarray:
    extent = np.asarray(size_xyz) * np.asarray(spacing_xyz)
    return np.random.default_rng(seed).uniform(0.25 * extent, 0.75 * extent, size=(n, 3))


def _grid_mm(size_xyz: Sequence[int], spacing_xyz: Sequence[float]) -> np.ndarray:
    """(nz, ny, nx, 3) physical positions (x, y, z) in mm of the voxel centres (index * spacing)."""
    nx, ny, nz = size_xyz
    z, y, x = np.meshgrid(
        *(np.arange(n) * s for n, s in zip((nz, ny, nx), spacing_xyz[::-1], strict=True)), indexing="ij"
    )
    return np.stack([x, y, z], axis=-1)


def blobs(points_mm: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """HU of the blob image at ``points_mm`` (..., 3)."""
    out = np.full(points_mm.shape[:-1], -1000.0)
    for c in centres:
        out += 600.0 * np.exp(-np.square(points_mm - c).sum(axis=-1) / (2 * BLOB_SIGMA_MM**2))
    return out.astype(np.float32)


def translation(shift_mm: Sequence[float]) -> tuple[Callable, Callable]:
    """phi(x) = x + shift and its inverse."""
    shift = np.asarray(shift_mm, dtype=np.float64)
    return (lambda p: p + shift), (lambda p: p - shift)


def smooth(amplitude_mm: float, size_xyz=SIZE, spacing_xyz=SPACING) -> tuple[Callable, Callable]:
    """A smooth, spatially varying motion: psi(y) = y - u(y) with u(y) = amplitude * (sin(pi z'), 0.5 sin(pi x'),
    -sin(pi y')) where x', y', z' are the positions as fractions of the field of view. Returns (phi, psi);
    phi solves phi(x) = x + u(phi(x)) by fixed-point iteration."""
    extent = np.asarray(size_xyz) * np.asarray(spacing_xyz)

    def u(p: np.ndarray) -> np.ndarray:
        f = p / extent
        return amplitude_mm * np.stack(
            [np.sin(np.pi * f[..., 2]), 0.5 * np.sin(np.pi * f[..., 0]), -np.sin(np.pi * f[..., 1])], axis=-1
        )

    slope = amplitude_mm * np.pi / extent.min()
    assert slope < 0.5, "the motion must be a contraction for the fixed-point iteration"

    def phi(p: np.ndarray) -> np.ndarray:
        y = np.array(p, dtype=np.float64)
        for _ in range(60):
            y = p + u(y)
        return y

    return phi, (lambda p: p - u(p))


def case_images(phi_inverse: Callable, size_xyz=SIZE, spacing_xyz=SPACING) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(T00, T50, grid_mm): (nz, ny, nx) HU volumes and the voxel centres' positions (nz, ny, nx, 3) mm."""
    grid = _grid_mm(size_xyz, spacing_xyz)
    centres = _centres(size_xyz, spacing_xyz)
    return blobs(grid, centres), blobs(phi_inverse(grid), centres), grid


def recovered_vs_true(
    disp_vox: np.ndarray, phi: Callable, t00: np.ndarray, grid_mm: np.ndarray, spacing_xyz=SPACING
) -> tuple[np.ndarray, np.ndarray]:
    """(recovered, true) displacements in mm, (M, 3), at the voxels with image evidence (inside the blobs)."""
    strong = t00 > -800.0
    recovered = disp_vox[strong] * np.asarray(spacing_xyz)
    true = phi(grid_mm[strong]) - grid_mm[strong]
    return recovered, true
