"""Coordinate conventions: the one module that knows axis order, index base and unit maps.

Conventions used everywhere in ``rnr`` (and nowhere else re-derived):

* **Arrays** (numpy volumes, torch tensors) are indexed ``[z, y, x]`` (DIR-Lab raw order: x fastest).
* **Points** are rows ``(x, y, z)`` -- the DIR-Lab landmark order and grid_sample's last-axis order.
* **Shape** of a volume as a point-ordered triple is ``size_xyz = (nx, ny, nz)``.
* **Voxel indices** inside the package are 0-based floats. DIR-Lab files are 1-based; convert at the
  file boundary with :func:`from_dirlab_index` / :func:`to_dirlab_index`.
* **Millimetres**: ``mm = index0 * spacing`` per axis (origin at voxel (0, 0, 0)), i.e.
  ``(index1 - 1) * spacing`` in DIR-Lab's 1-based terms. Spacing is applied straight across (x, y, z).
* **Normalised** coordinates: ``u = -1 + 2 * i / (n - 1)`` per axis, voxel centres on +-1 -- torch's
  ``grid_sample(..., align_corners=True)``. Each axis is scaled separately (anisotropic in mm).
* **Legacy** (reference-code) normalisation ``u = i / (n / 2) - 1`` with *1-based* i is available only
  through :func:`legacy_to_normalised` / :func:`legacy_from_normalised`, for comparing numbers produced by
  the public reference code (see rnr/methods/README.md, "Coordinates").
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

    ArrayLike = np.ndarray | torch.Tensor
else:
    ArrayLike = Any


def _torch_tensor(x: object) -> bool:
    """Whether ``x`` is a torch tensor. torch is not imported here: the workflow's plan reads this module at
    parse time, and a tensor can only exist once torch has been imported by someone else."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _as_size(size_xyz: Sequence[int]) -> tuple[int, int, int]:
    size = tuple(int(s) for s in size_xyz)
    if len(size) != 3 or any(s < 2 for s in size):
        raise ValueError(f"size_xyz must be three axis lengths >= 2 in (x, y, z) order, got {size_xyz!r}")
    return size  # type: ignore[return-value]


def _vec(values: Sequence[float], like: ArrayLike) -> ArrayLike:
    """Per-axis constants shaped (3,) in the array library and dtype of ``like``."""
    if _torch_tensor(like):
        torch = sys.modules["torch"]
        return torch.as_tensor(
            values, dtype=like.dtype if like.is_floating_point() else torch.float32, device=like.device
        )
    dtype = like.dtype if np.issubdtype(np.asarray(like).dtype, np.floating) else np.float64
    return np.asarray(values, dtype=dtype)


def _float(points: ArrayLike) -> ArrayLike:
    if _torch_tensor(points):
        return points if points.is_floating_point() else points.to(sys.modules["torch"].float32)
    arr = np.asarray(points)
    return arr if np.issubdtype(arr.dtype, np.floating) else arr.astype(np.float64)


def shape_zyx_to_size_xyz(shape_zyx: Sequence[int]) -> tuple[int, int, int]:
    """Array shape ``(nz, ny, nx)`` -> point-ordered size ``(nx, ny, nz)``."""
    nz, ny, nx = (int(s) for s in shape_zyx[-3:])
    return nx, ny, nz


def size_xyz_to_shape_zyx(size_xyz: Sequence[int]) -> tuple[int, int, int]:
    """Point-ordered size ``(nx, ny, nz)`` -> array shape ``(nz, ny, nx)``."""
    nx, ny, nz = (int(s) for s in size_xyz)
    return nz, ny, nx


def voxel_to_normalised(points: ArrayLike, size_xyz: Sequence[int]) -> ArrayLike:
    """0-based voxel indices (M, 3) in (x, y, z) -> normalised coordinates (M, 3) in [-1, 1]."""
    size = _as_size(size_xyz)
    p = _float(points)
    half = _vec([(n - 1) / 2.0 for n in size], p)
    return p / half - 1.0


def normalised_to_voxel(points: ArrayLike, size_xyz: Sequence[int]) -> ArrayLike:
    """Normalised coordinates (M, 3) -> 0-based voxel indices (M, 3), both (x, y, z)."""
    size = _as_size(size_xyz)
    p = _float(points)
    half = _vec([(n - 1) / 2.0 for n in size], p)
    return (p + 1.0) * half


def voxel_to_mm(points: ArrayLike, spacing_xyz: Sequence[float]) -> ArrayLike:
    """0-based voxel indices (M, 3) -> millimetres (M, 3): ``index0 * spacing`` per axis."""
    p = _float(points)
    return p * _vec([float(s) for s in spacing_xyz], p)


def mm_to_voxel(points: ArrayLike, spacing_xyz: Sequence[float]) -> ArrayLike:
    """Millimetres (M, 3) -> 0-based voxel indices (M, 3)."""
    p = _float(points)
    return p / _vec([float(s) for s in spacing_xyz], p)


def normalised_scale_mm(size_xyz: Sequence[int], spacing_xyz: Sequence[float]) -> tuple[float, float, float]:
    """Millimetres per normalised unit on each axis: ``spacing * (n - 1) / 2``."""
    size = _as_size(size_xyz)
    return tuple(float(s) * (n - 1) / 2.0 for s, n in zip(spacing_xyz, size, strict=True))  # type: ignore


def from_dirlab_index(points_1based: ArrayLike) -> ArrayLike:
    """DIR-Lab 1-based voxel indices -> 0-based (subtract 1 on every axis)."""
    return _float(points_1based) - 1.0


def to_dirlab_index(points_0based: ArrayLike) -> ArrayLike:
    """0-based voxel indices -> DIR-Lab 1-based (add 1 on every axis)."""
    return _float(points_0based) + 1.0


def legacy_to_normalised(points_1based: ArrayLike, size_xyz: Sequence[int]) -> ArrayLike:
    """Reference-code landmark normalisation: 1-based index used as is, scaled by n/2.

    ``u = p / (n / 2) - 1``. Differs from :func:`voxel_to_normalised` by up to about one voxel; kept only
    so that numbers from the public reference code can be reproduced.
    """
    size = _as_size(size_xyz)
    p = _float(points_1based)
    return p / _vec([n / 2.0 for n in size], p) - 1.0


def legacy_from_normalised(points: ArrayLike, size_xyz: Sequence[int]) -> ArrayLike:
    """Inverse of :func:`legacy_to_normalised`: ``p = (u + 1) * n / 2`` (reference-code 'index')."""
    size = _as_size(size_xyz)
    p = _float(points)
    return (p + 1.0) * _vec([n / 2.0 for n in size], p)


def voxel_grid(size_xyz: Sequence[int]) -> np.ndarray:
    """All voxel centres of a volume as 0-based (x, y, z) points, shape (nz*ny*nx, 3), in array (C) order.

    Row ``r`` corresponds to flat index ``r`` of an array of shape (nz, ny, nx).
    """
    nx, ny, nz = _as_size(size_xyz)
    zz, yy, xx = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    return np.stack([xx.ravel(), yy.ravel(), zz.ravel()], axis=1).astype(np.float64)


def mask_points(mask_zyx: np.ndarray) -> np.ndarray:
    """0-based (x, y, z) voxel indices (M, 3), float64, of the non-zero voxels of a (z, y, x) mask."""
    z, y, x = np.nonzero(np.asarray(mask_zyx))
    return np.stack([x, y, z], axis=1).astype(np.float64)
