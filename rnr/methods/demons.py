"""Classical baseline: multi-resolution fast symmetric forces demons (SimpleITK), wrapped as a Transform.

Method (configuration ``{method: demons}``; every number below is a :class:`DemonsSettings` default):

* **Roles** as in RNR: T00 is the fixed image, T50 the moving image. The result is a dense displacement
  d(x) on the T00 grid with phi(x) = x + d(x) the T50 position of the T00 voxel x, so TRE pushes the T00
  landmarks through phi exactly as for RNR.
* **Pre-processing**: HU are clamped to the window ``window_hu`` = [-1000, -200] HU (lung parenchyma and
  vessels keep their contrast; soft tissue, bone and the table become one flat value) and rescaled to
  [0, 1]. Both images are then lung-masked with the T00 mask dilated by ``mask_margin_mm`` = 10 mm
  (outside it the value is 1, the window top, i.e. flat "tissue"). The *T00* mask is used for both images
  because T50 has none; at exhale the lungs shrink cranially, so the T50 lungs lie inside the dilated T00
  mask, and the mask border falls in tissue that the window already made flat (no artificial edge).
* **Images in physical space**: the arrays of :mod:`rnr.data.case` are wrapped as SimpleITK images with the
  case's spacing, origin 0 and identity direction, so a physical point is exactly ``index0 * spacing``
  (coords.voxel_to_mm). The converted NIfTI's direction diag(1, 1, -1) is deliberately not used: it would
  only flip the sign of z in the field, and the identity frame makes the mm -> voxel conversion a plain
  division by the spacing.
* **Registration**: ``sitk.FastSymmetricForcesDemonsRegistrationFilter`` (symmetric-forces / ESM demons,
  Vercauteren et al., IPMI 2007) at three levels with shrink factors ``shrink`` = (4, 2, 1) on the
  finest-spaced axis (a coarser axis is shrunk less so that levels are close to isotropic, e.g. (4, 4, 2)
  for 1 x 1 x 2.5 mm; never below ``min_level_size`` = 8 voxels per axis), images block-averaged
  (``sitk.BinShrink``) per level, ``iterations`` = (200, 100, 50) per level, Gaussian smoothing of the
  displacement field with ``sigma_field`` = 1.5 voxels of the current level after every iteration
  (elastic-like regularisation; no update-field smoothing), ``max_step`` = 1.0 (ITK's
  MaximumUpdateStepLength, the cap on one iteration's update, about a voxel; ITK's default is 0.5). The
  field of one level is resampled linearly onto the next level's grid and used as its initial field
  (demons fields are in mm, so no rescaling is needed).
* **Output**: the finest level's field, in mm, converted to voxels (divide by spacing) and stored by
  :class:`FieldTransform` in normalised units. The map is then evaluated by the project's code: TRE
  (continuous and snapped) in :mod:`rnr.evaluation.metrics`, folding from the Jacobian of :class:`FieldTransform`.

Settings keys used: ``demons_iterations`` (per level), ``demons_shrink`` (per level), ``demons_sigma``,
``seed`` (recorded only; demons is deterministic). RNR's optimiser keys (iterations, batch_size, lr, ...)
do not apply.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import SimpleITK as sitk
import torch
from scipy import ndimage

from .. import coords
from ..fitting.phases import compared_terms
from ..fitting.transform import FieldTransform
from .base import FitContext, Method, MethodOutcome
from .settings import DemonsSettings

# ---------------------------------------------------------------------------------------------- settings


# ---------------------------------------------------------------------------------------------- registration
def _image(array_zyx: np.ndarray, spacing_xyz: Sequence[float]) -> sitk.Image:
    """(z, y, x) float array -> SimpleITK image with physical point = index * spacing (identity frame)."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(array_zyx, dtype=np.float32))
    image.SetSpacing(tuple(float(s) for s in spacing_xyz))
    return image


def preprocess(
    hu_zyx: np.ndarray, mask_zyx: np.ndarray, spacing_xyz: Sequence[float], params: DemonsSettings
) -> np.ndarray:
    """Windowed, [0, 1]-scaled, lung-masked volume (z, y, x) float32 (module docstring, 'Pre-processing')."""
    low, high = params.demons_window_hu
    out = (np.clip(np.asarray(hu_zyx, dtype=np.float32), low, high) - low) / (high - low)
    if params.demons_mask_margin_mm > 0:
        sx, sy, sz = (float(s) for s in spacing_xyz)
        # Ellipsoidal structuring element of radius mask_margin_mm on the anisotropic grid.
        rz, ry, rx = (int(np.ceil(params.demons_mask_margin_mm / s)) for s in (sz, sy, sx))
        z, y, x = np.ogrid[-rz : rz + 1, -ry : ry + 1, -rx : rx + 1]
        ball = (z * sz) ** 2 + (y * sy) ** 2 + (x * sx) ** 2 <= params.demons_mask_margin_mm**2
        region = ndimage.binary_dilation(np.asarray(mask_zyx, dtype=bool), structure=ball)
    else:
        region = np.asarray(mask_zyx, dtype=bool)
    out[~region] = 1.0
    return out


def level_factors(
    size_xyz: Sequence[int], spacing_xyz: Sequence[float], shrink: int, min_size: int
) -> tuple[int, int, int]:
    """Per-axis shrink factors (x, y, z) for a level: ``shrink`` on the finest axis, less on coarser axes
    (``round(shrink * min spacing / spacing)``), at least 1, never leaving fewer than ``min_size`` voxels."""
    finest = min(float(s) for s in spacing_xyz)
    out = []
    for n, s in zip(size_xyz, spacing_xyz, strict=True):
        f = max(1, int(round(shrink * finest / float(s))))
        f = max(1, min(f, int(n) // max(min_size, 1)))
        out.append(f)
    return tuple(out)  # type: ignore[return-value]


def demons_register(
    fixed_hu: np.ndarray,
    moving_hu: np.ndarray,
    mask_zyx: np.ndarray,
    spacing_xyz: Sequence[float],
    params: DemonsSettings = DemonsSettings(),
    log: Callable[[dict[str, Any]], None] | None = None,
) -> np.ndarray:
    """Register moving (T50) to fixed (T00); return the displacement on the fixed grid in voxels.

    Args:
        fixed_hu, moving_hu: (nz, ny, nx) volumes in HU on the same grid.
        mask_zyx: (nz, ny, nx) T00 lung mask.
        spacing_xyz: voxel spacing (x, y, z) in mm.
        params: see :class:`DemonsSettings`.
        log: called after every iteration with ``{"level", "iteration", "metric"}`` (SimpleITK's mean
            squared intensity difference of the [0, 1]-scaled images at that level).

    Returns:
        (nz, ny, nx, 3) float32 displacement (dx, dy, dz) in voxels: T00 voxel x maps to T50 position x + d.
    """
    fixed = _image(preprocess(fixed_hu, mask_zyx, spacing_xyz, params), spacing_xyz)
    moving = _image(preprocess(moving_hu, mask_zyx, spacing_xyz, params), spacing_xyz)
    size = fixed.GetSize()
    field: sitk.Image | None = None
    for level, (shrink, iterations) in enumerate(zip(params.demons_shrink, params.demons_iterations, strict=True)):
        factors = level_factors(size, spacing_xyz, shrink, params.demons_min_level_size)
        fixed_l = sitk.BinShrink(fixed, factors) if factors != (1, 1, 1) else fixed
        moving_l = sitk.BinShrink(moving, factors) if factors != (1, 1, 1) else moving
        if field is None:
            init = sitk.Image(fixed_l.GetSize(), sitk.sitkVectorFloat64, 3)
            init.CopyInformation(fixed_l)
        else:
            # Fields are in mm: resampling onto the new grid needs no rescaling of the vectors.
            init = sitk.Resample(field, fixed_l, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkVectorFloat64)
        if iterations == 0:
            field = init
            continue
        demons = sitk.FastSymmetricForcesDemonsRegistrationFilter()
        # ITK ignores OMP_NUM_THREADS; follow torch's thread count (the job's CPU budget) instead.
        demons.SetNumberOfThreads(max(1, torch.get_num_threads()))
        demons.SetNumberOfIterations(int(iterations))
        demons.SetSmoothDisplacementField(True)
        demons.SetStandardDeviations(float(params.demons_sigma))
        demons.SetSmoothUpdateField(False)
        demons.SetMaximumUpdateStepLength(float(params.demons_max_step))
        if log is not None:
            counter = {"i": 0}

            def _observe(filt=demons, lvl=level, count=counter) -> None:
                count["i"] += 1
                log({"level": lvl, "iteration": count["i"], "metric": float(filt.GetMetric())})

            demons.AddCommand(sitk.sitkIterationEvent, _observe)
        field = demons.Execute(fixed_l, moving_l, init)
    assert field is not None
    if field.GetSize() != size:
        field = sitk.Resample(field, fixed, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkVectorFloat64)
    disp_mm = sitk.GetArrayFromImage(field)  # (nz, ny, nx, 3), components (x, y, z) in mm
    return coords.mm_to_voxel(disp_mm.astype(np.float64), spacing_xyz).astype(np.float32)


def fit_demons(
    fixed_hu: np.ndarray,
    moving_hu: np.ndarray,
    mask_zyx: np.ndarray,
    size_xyz: Sequence[int],
    spacing_xyz: Sequence[float],
    params: DemonsSettings = DemonsSettings(),
    log: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[FieldTransform, float]:
    """:func:`demons_register` wrapped as a :class:`FieldTransform`; returns (transform, wall seconds)."""
    start = time.perf_counter()
    disp = demons_register(fixed_hu, moving_hu, mask_zyx, spacing_xyz, params, log)
    return FieldTransform(size_xyz, spacing_xyz, disp), time.perf_counter() - start


def fit(ctx: FitContext[DemonsSettings]) -> MethodOutcome:
    """Demons on one case (not iterative in the project's loop).

    Runs on the CPU (SimpleITK) whatever the device setting; the map is returned on the CPU. The log
    (loss.csv) has one row per demons iteration: ``iteration`` (1.., over all levels), ``loss`` (SimpleITK's
    mean squared difference of the [0, 1]-scaled images at that level), ``level`` (0 = coarsest),
    ``level_iteration`` and ``elapsed_s``.
    """
    params = ctx.settings.params
    fixed, moving = ctx.case.image("T00"), ctx.case.image("T50")
    rows: list[dict[str, Any]] = []
    start = time.perf_counter()

    def log(row: dict[str, Any]) -> None:
        rows.append(
            {
                "iteration": len(rows) + 1,
                "loss": row["metric"],
                "level": row["level"],
                "level_iteration": row["iteration"],
                "elapsed_s": time.perf_counter() - start,
            }
        )

    case = ctx.case
    transform, wall = fit_demons(fixed, moving, ctx.mask, case.size_xyz, case.spacing_xyz, params, log)
    frame = pd.DataFrame(rows, columns=["iteration", "loss", "level", "level_iteration", "elapsed_s"])
    return MethodOutcome(
        transform=transform,
        log=frame,
        wall_s=wall,
        iterations=len(rows),
        batch_size=None,
        n_points=int(np.count_nonzero(ctx.mask)),
        compared_terms=[t.label for t in compared_terms("seed", False, 1)],
        device=torch.device("cpu"),
    )


METHOD = Method(
    name="demons",
    settings=DemonsSettings,
    fit=fit,
    transforms=(FieldTransform,),
    summary="classical baseline: SimpleITK multi-resolution fast symmetric forces demons (CPU)",
)
