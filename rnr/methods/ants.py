"""Classical baseline: ANTs SyN with a cross-correlation metric and the lung mask (``antspyx``).

Method (configuration ``{method: ants}``; every number below is an :class:`AntsSettings` default):

* **Roles** as for every method: T00 is ANTs' *fixed* image, T50 its *moving* image, the T00 lung mask the
  fixed-image metric mask. ANTs' forward transforms warp the moving image onto the fixed one: the warped
  image at a fixed point x is T50 at ``x + u(x)``, so ``x + u(x)`` is the T50 position of the T00 point x,
  which is phi. (ITK and ANTs map *points* the opposite way to images; this is that convention: the
  transforms that warp T50 onto T00 carry T00 points to T50. tests/test_methods_ants.py checks the sign on
  a known translation.) The forward transforms are composed by ANTs into one displacement field on the T00
  grid, so no affine part is assumed to be the identity.
* **Images in physical space**: the HU arrays (z, y, x) become ANTs images (x, y, z order) with the case's
  spacing, origin 0 and identity direction, so a physical point is ``index0 * spacing`` (as in demons.py and
  elastix.py). No intensity pre-processing: local cross-correlation is invariant to a linear change of
  intensity.
* **Registration**: ``ants.registration(type_of_transform="SyNOnly")``, symmetric normalisation without
  rigid or affine stages (T00 and T50 are phases of one scan), metric CC with neighbourhood radius
  ``ants_cc_radius`` = 2 voxels, ``SyN[gradient step 0.2, update-field sigma 3, total-field sigma 0]``
  (voxels), four resolutions with ``ants_iterations`` = (100, 70, 50, 0), which antspyx runs at shrink factors
  8, 4, 2, 1 with Gaussian smoothing 3, 2, 1, 0 voxels. That is the schedule of ANTs'
  ``antsRegistrationSyN.sh`` (100, 70, 50, 20 iterations, CC radius 4) made to fit a CPU: no iterations at
  full resolution (the field of the half-resolution level is upsampled; about 2 mm voxels on DIR-Lab) and a
  radius of 2 (a 5 x 5 x 5 instead of a 9 x 9 x 9 neighbourhood). On a 256 x 256 x 94 case on a loaded 2-core
  CPU this took 9 min of CPU time (27 min wall); with 20 full-resolution iterations it had not finished after
  10 min of CPU time (28 min wall), and antspyx's own ``SyNCC`` preset (radius 4, an affine stage, then
  2100 x 1200 x 1200 x 20 iterations) not within 15 minutes.
* **Output**: the composed field (mm along the index axes, identity frame), divided by the spacing, becomes
  an :class:`AntsFieldTransform` (trilinear between voxel centres, det J from central differences of the
  field, as for demons).
* **Threads**: ANTs takes its thread count from ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS``, read when ITK first
  needs it in the process; it is set to the job's thread count (torch's, which follows OMP_NUM_THREADS and
  so ``register_threads``) before the first registration. ``rnr register`` registers one case per process.
* **Seed**: recorded only. The CC metric is dense (every voxel), so SyN draws no random samples.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..fitting.transform import FieldTransform
from .base import FitContext, Method, MethodOutcome, import_extra, pair_outcome
from .field import world_to_voxel_vectors
from .settings import AntsSettings

THREADS_VARIABLE = "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"


class AntsFieldTransform(FieldTransform):
    """The composed dense field of an ANTs SyN registration (:class:`FieldTransform` under its own ``kind``)."""

    kind = "ants"


def ants_register(
    fixed_hu: np.ndarray,
    moving_hu: np.ndarray,
    mask_zyx: np.ndarray,
    spacing_xyz: Sequence[float],
    params: AntsSettings = AntsSettings(),
    threads: int = 1,
) -> np.ndarray:
    """Register moving (T50) to fixed (T00) with ANTs SyN; return the displacement on the fixed grid in voxels.

    Args:
        fixed_hu, moving_hu: (nz, ny, nx) volumes in HU on the same grid.
        mask_zyx: (nz, ny, nx) T00 lung mask (the fixed-image metric mask).
        spacing_xyz: voxel spacing (x, y, z) in mm.
        params: see :class:`AntsSettings`. threads: ITK threads (module docstring, "Threads").

    Returns:
        (nz, ny, nx, 3) float32 displacement (dx, dy, dz) in voxels: T00 voxel x maps to T50 position x + d.
    """
    # Before antspyx loads ITK: the variable is read once per process.
    os.environ[THREADS_VARIABLE] = str(max(1, int(threads)))
    ants = import_extra("ants", "ants", "antspyx")

    def image(array_zyx: np.ndarray) -> Any:
        # antspyx arrays are (x, y, z); origin 0 and identity direction (module docstring).
        xyz = np.ascontiguousarray(np.asarray(array_zyx, dtype=np.float32).transpose(2, 1, 0))
        return ants.from_numpy(xyz, origin=(0.0, 0.0, 0.0), spacing=tuple(float(s) for s in spacing_xyz))

    fixed, moving = image(fixed_hu), image(moving_hu)
    mask = image(np.asarray(mask_zyx, dtype=bool))
    with tempfile.TemporaryDirectory(prefix="rnr-ants-") as folder:
        result = ants.registration(
            fixed,
            moving,
            type_of_transform="SyNOnly",
            outprefix=str(Path(folder) / "syn_"),
            mask=mask,
            syn_metric="CC",
            syn_sampling=int(params.ants_cc_radius),
            reg_iterations=tuple(int(i) for i in params.ants_iterations),
            grad_step=float(params.ants_grad_step),
            flow_sigma=float(params.ants_flow_sigma),
            total_sigma=float(params.ants_total_sigma),
        )
        composed = ants.apply_transforms(
            fixed, moving, transformlist=result["fwdtransforms"], compose=str(Path(folder) / "composed_")
        )
        field = ants.image_read(composed)
        vec_mm = np.asarray(field.numpy(), dtype=np.float32).transpose(2, 1, 0, 3)  # (nz, ny, nx, 3), x y z mm
    return world_to_voxel_vectors(vec_mm, np.eye(3), spacing_xyz)


def fit(ctx: FitContext[AntsSettings]) -> MethodOutcome:
    """ANTs SyN on one case (CPU). antspyx reports neither a per-iteration metric nor how many iterations ran
    (SyN may stop a resolution early on its convergence test), so the log (loss.csv) is empty, ``iterations``
    is 0 and the run record gives the maximum, ``ants_max_iterations``."""
    params = ctx.settings.params
    case = ctx.case
    start = time.perf_counter()
    disp = ants_register(
        case.image("T00"), case.image("T50"), ctx.mask, case.spacing_xyz, params, threads=torch.get_num_threads()
    )
    wall = time.perf_counter() - start
    return pair_outcome(
        ctx,
        AntsFieldTransform(case.size_xyz, case.spacing_xyz, disp),
        wall,
        extra={"ants_max_iterations": int(sum(params.ants_iterations))},
        device=torch.device("cpu"),
    )


METHOD = Method(
    name="ants",
    settings=AntsSettings,
    fit=fit,
    transforms=(AntsFieldTransform,),
    summary="classical baseline: ANTs SyN, CC metric, lung mask, 4 resolutions (CPU; extra 'baselines')",
)
