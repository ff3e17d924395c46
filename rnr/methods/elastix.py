"""Classical baseline: elastix B-spline registration (``itk-elastix``), the lung preset of the elastix model zoo.

Method (configuration ``{method: elastix}``; every number below is an :class:`ElastixSettings` default):

* **Roles** as for every method: T00 is elastix's *fixed* image, T50 its *moving* image, the T00 lung mask
  its fixed mask (the metric is computed only at samples inside the lung). elastix's transform maps a
  fixed-image point to its moving-image position, which is exactly phi: T00 point -> T50 position. (Warping
  the T50 image onto T00 uses the same transform; the inverse is never needed.)
* **Images in physical space**: the HU arrays become ITK images with the case's spacing, origin 0 and
  identity direction, so a physical point is ``index0 * spacing`` (index-space mm, rnr/coords.py), as in
  demons.py. The converted NIfTI's direction diag(1, 1, -1) is not used: it would only flip the sign of z.
  No intensity pre-processing: normalized correlation does not change under a linear change of intensity.
* **Preset**: the B-spline stage with lung mask of **Par0011** (Staring et al., EMPIRE10 challenge,
  MICCAI 2010; elastix model zoo, ``Parameters.Par0011.bspline2_s``): cubic B-spline transform with a final
  control-point grid of 5 mm, grid schedule 16, 8, 4, 2, 1 over five resolutions, recursive image pyramids
  with factors 4, 3, 2, 1, 1, metric AdvancedNormalizedCorrelation plus TransformBendingEnergyPenalty with
  relative weights 1 and 0.05, AdaptiveStochasticGradientDescent with automatic parameter estimation and
  adaptive step sizes, 2000 random coordinates (RandomCoordinate sampler, new samples every iteration),
  linear interpolation during optimisation.
* **Where the preset differs from Par0011**, and why: (1) **500 iterations per resolution instead of 2000**,
  so that a DIR-Lab-size case runs in about a minute on a 2-core CPU; (2) no affine and no first B-spline
  stage before it (Par0011 registers two separate breath-hold scans; T00 and T50 are phases of one 4DCT
  scan, already aligned outside the breathing motion); (3) the mask is not eroded at the fine resolutions
  (Par0011 erodes it at the last three): samples then reach the lung border, where the motion is largest;
  (4) the sampler's random seed is the run's ``seed``.
* **Output**: transformix's deformation field on the T00 grid (mm, along the index axes because the frame is
  the identity), divided by the spacing, becomes a :class:`ElastixFieldTransform` (trilinear between voxel
  centres, det J from central differences of the field, as for demons).
* **Threads**: ITK's global default number of threads is set to the job's thread count (torch's, which
  follows OMP_NUM_THREADS and so ``register_threads``). Passing ``number_of_threads`` to
  ``itk.elastix_registration_method`` instead crashed the process (segmentation fault) with itk-elastix 0.25.4.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..fitting.transform import FieldTransform
from .base import FitContext, Method, MethodOutcome, import_extra, pair_outcome
from .field import world_to_voxel_vectors
from .settings import ElastixSettings

#: Columns of loss.csv.
LOG_COLUMNS = ["iteration", "loss", "level", "level_iteration", "elapsed_s"]


class ElastixFieldTransform(FieldTransform):
    """The dense field of an elastix B-spline transform (:class:`FieldTransform` under its own ``kind``)."""

    kind = "elastix"


def parameter_map(params: ElastixSettings, seed: int) -> dict[str, list[str]]:
    """The elastix parameter map of ``params`` (names and values as in an elastix parameter file)."""
    n = len(params.elastix_pyramid)
    metrics = [params.elastix_metric]
    weights: dict[str, list[str]] = {}
    if params.elastix_bending_weight > 0:
        metrics.append("TransformBendingEnergyPenalty")
        weights = {
            "UseRelativeWeights": ["true"],
            "Metric0RelativeWeight": ["1.0"],
            "Metric1RelativeWeight": [repr(float(params.elastix_bending_weight))],
        }
    return {
        "FixedInternalImagePixelType": ["float"],
        "MovingInternalImagePixelType": ["float"],
        "FixedImageDimension": ["3"],
        "MovingImageDimension": ["3"],
        "UseDirectionCosines": ["true"],
        "Registration": ["MultiMetricMultiResolutionRegistration"],
        "FixedImagePyramid": ["FixedRecursiveImagePyramid"],
        "MovingImagePyramid": ["MovingRecursiveImagePyramid"],
        "NumberOfResolutions": [str(n)],
        "ImagePyramidSchedule": [str(int(f)) for f in params.elastix_pyramid for _ in range(3)],
        "Interpolator": ["BSplineInterpolator"],
        "BSplineInterpolationOrder": ["1"],
        "Metric": metrics,
        **weights,
        "Optimizer": ["AdaptiveStochasticGradientDescent"],
        "AutomaticParameterEstimation": ["true"],
        "UseAdaptiveStepSizes": ["true"],
        "MaximumNumberOfIterations": [str(int(params.elastix_iterations))],
        "Transform": ["BSplineTransform"],
        "BSplineTransformSplineOrder": ["3"],
        "FinalGridSpacingInPhysicalUnits": [repr(float(params.elastix_grid_spacing_mm))] * 3,
        "GridSpacingSchedule": [repr(float(g)) for g in params.elastix_grid_schedule],
        "HowToCombineTransforms": ["Compose"],
        "ImageSampler": [params.elastix_sampler],
        "NumberOfSpatialSamples": [str(int(params.elastix_samples))],
        "NewSamplesEveryIteration": ["true"],
        "UseRandomSampleRegion": ["false"],
        "MaximumNumberOfSamplingAttempts": ["50"],
        "ErodeMask": ["false"],
        "RandomSeed": [str(int(seed))],
        "Resampler": ["DefaultResampler"],
        "ResampleInterpolator": ["FinalBSplineInterpolator"],
        "FinalBSplineInterpolationOrder": ["3"],
        "DefaultPixelValue": ["-1000"],
        "WriteResultImage": ["false"],
        "WriteIterationInfo": ["true"],
    }


def read_iteration_log(folder: Path, levels: int) -> pd.DataFrame:
    """elastix's ``IterationInfo.0.R<level>.txt`` files of ``folder`` as one log (:data:`LOG_COLUMNS`):
    ``loss`` is elastix's total metric value (the similarity metric plus the weighted penalty), ``elapsed_s``
    adds up elastix's own per-iteration times."""
    frames = []
    for level in range(levels):
        path = folder / f"IterationInfo.0.R{level}.txt"
        if not path.is_file():
            continue
        table = pd.read_csv(path, sep="\t")
        frames.append(
            pd.DataFrame(
                {
                    "loss": table["2:Metric"].astype(float),
                    "level": level,
                    "level_iteration": table["1:ItNr"].astype(int) + 1,
                    "step_s": table["Time[ms]"].astype(float) / 1000.0,
                }
            )
        )
    if not frames:
        return pd.DataFrame({c: [] for c in LOG_COLUMNS})
    log = pd.concat(frames, ignore_index=True)
    log.insert(0, "iteration", np.arange(1, len(log) + 1))
    log["elapsed_s"] = log.pop("step_s").cumsum()
    return log[LOG_COLUMNS]


def elastix_register(
    fixed_hu: np.ndarray,
    moving_hu: np.ndarray,
    mask_zyx: np.ndarray,
    spacing_xyz: Sequence[float],
    params: ElastixSettings = ElastixSettings(),
    seed: int = 3,
    threads: int = 1,
) -> tuple[np.ndarray, pd.DataFrame]:
    """Register moving (T50) to fixed (T00) with elastix; return the displacement on the fixed grid in voxels.

    Args:
        fixed_hu, moving_hu: (nz, ny, nx) volumes in HU on the same grid.
        mask_zyx: (nz, ny, nx) T00 lung mask (elastix's fixed mask).
        spacing_xyz: voxel spacing (x, y, z) in mm.
        params: see :class:`ElastixSettings`. seed: the sampler's random seed. threads: ITK threads.

    Returns:
        (nz, ny, nx, 3) float32 displacement (dx, dy, dz) in voxels (T00 voxel x maps to T50 position x + d),
        and the iteration log (:func:`read_iteration_log`).
    """
    itk = import_extra("itk", "elastix", "itk-elastix")
    itk.MultiThreaderBase.SetGlobalDefaultNumberOfThreads(max(1, int(threads)))

    def image(array: np.ndarray, dtype) -> Any:
        out = itk.image_from_array(np.ascontiguousarray(array, dtype=dtype))
        out.SetSpacing([float(s) for s in spacing_xyz])  # origin 0, identity direction (module docstring)
        return out

    fixed, moving = image(fixed_hu, np.float32), image(moving_hu, np.float32)
    mask = image(np.asarray(mask_zyx, dtype=bool), np.uint8)
    parameters = itk.ParameterObject.New()
    parameters.AddParameterMap(parameter_map(params, seed))
    with tempfile.TemporaryDirectory(prefix="rnr-elastix-") as folder:
        registration = itk.ElastixRegistrationMethod.New(fixed, moving)
        registration.SetParameterObject(parameters)
        registration.SetFixedMask(mask)
        registration.SetOutputDirectory(folder)
        registration.SetLogToConsole(False)
        registration.SetLogToFile(True)
        registration.UpdateLargestPossibleRegion()
        log = read_iteration_log(Path(folder), len(params.elastix_pyramid))
        # transformix with its output folder set: itk.transformix_deformation_field writes its files into
        # the working directory.
        transformix = itk.TransformixFilter.New(moving)
        transformix.SetTransformParameterObject(registration.GetTransformParameterObject())
        transformix.SetComputeDeformationField(True)
        transformix.SetOutputDirectory(folder)
        transformix.SetLogToConsole(False)
        transformix.UpdateLargestPossibleRegion()
        field = transformix.GetOutputDeformationField()
    vec_mm = np.asarray(itk.GetArrayFromImage(field), dtype=np.float32)  # (nz, ny, nx, 3), x y z in mm
    return world_to_voxel_vectors(vec_mm, np.eye(3), spacing_xyz), log


def fit(ctx: FitContext[ElastixSettings]) -> MethodOutcome:
    """elastix on one case (CPU); loss.csv is elastix's per-iteration metric (:func:`read_iteration_log`)."""
    params = ctx.settings.params
    case = ctx.case
    start = time.perf_counter()
    disp, log = elastix_register(
        case.image("T00"),
        case.image("T50"),
        ctx.mask,
        case.spacing_xyz,
        params,
        seed=ctx.settings.seed,
        threads=torch.get_num_threads(),
    )
    wall = time.perf_counter() - start
    return pair_outcome(
        ctx,
        ElastixFieldTransform(case.size_xyz, case.spacing_xyz, disp),
        wall,
        log=log,
        iterations=len(log),
        extra={"parameter_map": parameter_map(params, ctx.settings.seed)},
        device=torch.device("cpu"),
    )


METHOD = Method(
    name="elastix",
    settings=ElastixSettings,
    fit=fit,
    transforms=(ElastixFieldTransform,),
    summary="classical baseline: elastix B-spline, lung preset after the model zoo's Par0011 (CPU; extra 'baselines')",
)
