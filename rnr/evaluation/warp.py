"""Resample a moving volume through a Transform: I_moving(phi(x)) for x on the fixed (T00) grid.

Sampling is trilinear with border clamping, as everywhere in the project, done by
``torch.nn.functional.grid_sample`` with ``align_corners=True``, which is exactly the normalised convention of
coords.py. Points are processed in chunks (whole slices for volumes) so that a 512 x 512 x 136 case fits in
modest memory.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .. import coords
from ..fitting.transform import DEFAULT_CHUNK, Transform


def sample_normalised(volume_zyx: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Trilinear, border-clamped samples of a (nz, ny, nx) volume at normalised points u (M, 3) -> (M,)."""
    grid = u.to(volume_zyx.dtype).reshape(1, 1, 1, -1, 3)
    out = F.grid_sample(volume_zyx[None, None], grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out.reshape(-1)


def warp_points(
    transform: Transform,
    moving_zyx: np.ndarray,
    points_vox: np.ndarray,
    step: int | None = None,
    chunk: int = DEFAULT_CHUNK,
) -> np.ndarray:
    """I_moving(phi_step(x)) at 0-based fixed-grid voxel points x (M, 3) -> (M,) float32.

    ``moving_zyx`` must lie on the transform's grid (shape (nz, ny, nx) = size_xyz reversed).
    """
    moving = np.asarray(moving_zyx, dtype=np.float32)
    expected = coords.size_xyz_to_shape_zyx(transform.size_xyz)
    if moving.shape != expected:
        raise ValueError(f"moving volume has shape {moving.shape}, the transform's grid is (z, y, x) = {expected}")
    volume = torch.as_tensor(moving, device=transform.device)
    points = np.asarray(points_vox, dtype=np.float64)
    out = np.empty(len(points), dtype=np.float32)
    with torch.no_grad():
        for start in range(0, len(points), chunk):
            p = torch.as_tensor(points[start : start + chunk], dtype=torch.float32, device=transform.device)
            mapped = transform.map_normalised(coords.voxel_to_normalised(p, transform.size_xyz), step)
            out[start : start + chunk] = sample_normalised(volume, mapped).cpu().numpy()
    return out


def slice_points(size_xyz: tuple[int, int, int], axis: str, index: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Voxel points (M, 3) of one slice and the 2-D shape of that slice as an array.

    ``axis`` is ``"axial"`` (fixed z; image rows = y, columns = x), ``"coronal"`` (fixed y; rows = z,
    columns = x) or ``"sagittal"`` (fixed x; rows = z, columns = y). Row 0 is the smallest index, so for
    coronal/sagittal row 0 is z = 0, the most superior DIR-Lab slice.
    """
    nx, ny, nz = size_xyz
    if axis == "axial":
        rows, cols = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
        pts = np.stack([cols, rows, np.full_like(rows, index)], axis=-1)
    elif axis == "coronal":
        rows, cols = np.meshgrid(np.arange(nz), np.arange(nx), indexing="ij")
        pts = np.stack([cols, np.full_like(rows, index), rows], axis=-1)
    elif axis == "sagittal":
        rows, cols = np.meshgrid(np.arange(nz), np.arange(ny), indexing="ij")
        pts = np.stack([np.full_like(rows, index), cols, rows], axis=-1)
    else:
        raise ValueError(f"axis must be axial, coronal or sagittal, got {axis!r}")
    return pts.reshape(-1, 3).astype(np.float64), rows.shape


def take_slice(volume_zyx: np.ndarray, axis: str, index: int) -> np.ndarray:
    """The 2-D slice of a (nz, ny, nx) array matching :func:`slice_points`' layout."""
    if axis == "axial":
        return volume_zyx[index, :, :]
    if axis == "coronal":
        return volume_zyx[:, index, :]
    if axis == "sagittal":
        return volume_zyx[:, :, index]
    raise ValueError(f"axis must be axial, coronal or sagittal, got {axis!r}")


def warp_slice(
    transform: Transform, moving_zyx: np.ndarray, axis: str, index: int, step: int | None = None
) -> np.ndarray:
    """The warped moving image on one fixed-grid slice, laid out as :func:`take_slice` (float32)."""
    points, shape = slice_points(transform.size_xyz, axis, index)
    return warp_points(transform, moving_zyx, points, step).reshape(shape)


def warp_volume(
    transform: Transform, moving_zyx: np.ndarray, step: int | None = None, slices_per_chunk: int = 4
) -> np.ndarray:
    """The whole warped moving volume on the fixed grid, (nz, ny, nx) float32, a few z-slices at a time."""
    nx, ny, nz = transform.size_xyz
    out = np.empty((nz, ny, nx), dtype=np.float32)
    # Points of one z-slab only (the full grid as float64 would be ~850 MB for a 512 x 512 x 136 case).
    yy, xx = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    for z0 in range(0, nz, slices_per_chunk):
        zs = np.arange(z0, min(z0 + slices_per_chunk, nz))
        pts = np.stack(
            [
                np.broadcast_to(xx, (len(zs), ny, nx)),
                np.broadcast_to(yy, (len(zs), ny, nx)),
                np.broadcast_to(zs[:, None, None], (len(zs), ny, nx)),
            ],
            axis=-1,
        ).reshape(-1, 3)
        out[zs[0] : zs[-1] + 1] = warp_points(transform, moving_zyx, pts, step, chunk=len(pts)).reshape(-1, ny, nx)
    return out
