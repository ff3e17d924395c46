"""The data a point-based fit samples: T00-mask points and the intensities its compared terms need.

The points are the voxel centres of the T00 lung mask in normalised coordinates (rnr/coords.py). Each
compared term (rnr/fitting/phases.py) samples phase ``moving`` at phi_step(x) and compares it with phase ``fixed``
at x. Fixed intensities are exact voxel values (the points are voxel centres), gathered once; moving
volumes are kept whole on the device and sampled trilinearly with border clamping (rnr/fitting/sampling.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .. import coords
from ..data.case import ConvertedCase
from .phases import Term


@dataclass
class FitData:
    """Everything the loop samples, on the fitting device.

    Attributes:
        points: (M, 3) normalised (x, y, z) centres of the T00-mask voxels, float32.
        fixed: (S, M) fixed intensities (HU) at the points, one row per compared term.
        moving: (K, nz, ny, nx) moving volumes (HU): K = 1 (all terms warp T50) or K = S (one per term).
        terms: the S compared terms.
        size_xyz, spacing_xyz: the T00 grid.
    """

    points: torch.Tensor
    fixed: torch.Tensor
    moving: torch.Tensor
    terms: tuple[Term, ...]
    size_xyz: tuple[int, int, int]
    spacing_xyz: tuple[float, float, float]

    @property
    def n_points(self) -> int:
        return int(self.points.shape[0])

    @property
    def steps(self) -> tuple[int, ...]:
        return tuple(t.step for t in self.terms)

    @property
    def intermediate_used(self) -> bool:
        return len(self.terms) > 1


def prepare_data(case: ConvertedCase, mask: np.ndarray, terms: tuple[Term, ...], device: torch.device) -> FitData:
    """Load the images the ``terms`` compare and gather the mask points (module docstring).

    Args:
        case: the converted case.
        mask: (nz, ny, nx) bool T00 lung mask on the case grid.
        terms: the compared terms (rnr.fitting.phases.compared_terms).
        device: where the tensors live.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != case.shape_zyx:
        raise ValueError(f"mask shape {mask.shape} is not the case grid (z, y, x) = {case.shape_zyx}")
    if not mask.any():
        raise ValueError("the mask is empty: registration needs T00 lung points")
    points = coords.voxel_to_normalised(coords.mask_points(mask), case.size_xyz)
    fixed_rows: dict[str, np.ndarray] = {}
    for phase in dict.fromkeys(t.fixed for t in terms):
        fixed_rows[phase] = case.image(phase)[mask]  # C order = the order of coords.mask_points
    fixed = torch.as_tensor(np.stack([fixed_rows[t.fixed] for t in terms]), dtype=torch.float32, device=device)
    moving_phases = list(dict.fromkeys(t.moving for t in terms))
    if len(moving_phases) not in (1, len(terms)):
        raise AssertionError("moving phases must be one for all terms or one per term")
    moving = torch.empty((len(moving_phases), *case.shape_zyx), dtype=torch.float32, device=device)
    for i, phase in enumerate(moving_phases):  # one volume on the host at a time
        moving[i] = torch.from_numpy(case.image(phase))
    return FitData(
        points=torch.as_tensor(points, dtype=torch.float32, device=device),
        fixed=fixed,
        moving=moving,
        terms=terms,
        size_xyz=case.size_xyz,
        spacing_xyz=case.spacing_xyz,
    )
