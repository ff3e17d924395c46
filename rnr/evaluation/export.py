"""Export a fitted map as standard NIfTI files that any ITK-based tool or viewer reads (``rnr export``).

For one run folder (``rnr register``) and its converted case, :func:`export_run` writes into the output
folder, every file on the T00 grid with ``T00.nii.gz``'s geometry (size, spacing, origin, direction):

=============================  ==============================================================================
``field.nii.gz``               the displacement field of phi (T00 voxel x -> T50 position): a 3-vector per
                               voxel, float32, ITK's displacement field convention (below)
``field_step{n}.nii.gz``       the same for phi_n, n = 1..N-1, of a map with N > 1 steps (RNR's blocks;
                               phi_N is ``field.nii.gz``)
``warped_T50.nii.gz``          T50 sampled at phi(x): the moving image brought onto T00 (HU, float32)
``warped_{P}_step{n}.nii.gz``  for stepped maps on cases with T10..T40: phase P sampled at phi_n(x), one per
                               intermediate compared pair of the run's pairing (rnr/fitting/phases.py)
``detj.nii.gz``                det J of phi at every voxel (float32; the method's own Jacobian: closed form
                               for RNR and IDIR, central differences of the field for demons and ``field``)
``export.json``                what each file is, the run and case it came from, the conventions; written
                               last, so its presence marks a complete export
=============================  ==============================================================================

**Field convention** (ITK's, what ``sitk.DisplacementFieldTransform`` and ANTs / Slicer / ITK-SNAP expect):
the vector at T00 voxel x is phi(x) - x in millimetres along ITK's physical LPS axes, i.e.
``direction @ (spacing * d_vox)`` for the project's index-space displacement ``d_vox`` (rnr/coords.py). With
the converted images' direction diag(1, 1, -1) (rnr/data/dirlab_reader.py) the z component is minus the index-space z
displacement in mm. So ``DisplacementFieldTransform(field).TransformPoint(p)`` maps a T00 world point p to
its T50 world point, and ``sitk.Resample(T50, T00, that transform)`` is the warped T50 (up to float32 and
the border: outside the image ITK gives the default value where the project clamps to the edge value).

Memory: the grid is processed a few z-slices at a time; the one full-size array is the field being written
(nz * ny * nx * 3 float32, 400 MB for a 512 x 512 x 128 DIR-Lab case), plus SimpleITK's copy while writing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from .. import layout
from ..data import l2r
from ..data.case import ConvertedCase, load_case
from ..fitting.transform import DEFAULT_CHUNK, Transform
from ..io import InputError, write_image, write_json
from ..layout import DETJ, FIELD, MANIFEST
from ..methods.field import Frame, read_header, voxel_to_world_vectors, world_to_voxel_vectors
from ..methods.table import load_transform
from ..runtime import resolve_device
from .warp import warp_volume

SCHEMA = "rnr-export/1"
L2R_SCHEMA = "rnr-export-l2r/1"
#: z-slices processed at once (a 512 x 512 slab of 4 slices is 1 M points).
SLAB = 4

CONVENTION = (
    "field*.nii.gz: ITK displacement field on the T00 grid: vector at T00 voxel x = phi(x) - x in mm along "
    "ITK's physical (LPS) axes (direction @ (spacing * index-space displacement)); phi maps T00 points to "
    "their T50 positions. sitk.DisplacementFieldTransform(field) maps T00 world points to T50 world points; "
    "sitk.Resample(T50, T00, it) warps T50 onto T00."
)


def field_step_name(step: int) -> str:
    return f"field_step{step}.nii.gz"


def warped_name(phase: str, step: int | None = None) -> str:
    """``warped_T50.nii.gz`` for the full map; ``warped_{phase}_step{n}.nii.gz`` for phi_n."""
    return f"warped_{phase}.nii.gz" if step is None else f"warped_{phase}_step{step}.nii.gz"


# ------------------------------------------------------------------------------------------- dense maps
def _slabs(size_xyz: tuple[int, int, int], slices: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """(z0, z1, points): 0-based voxel points (x, y, z) of z-slices z0..z1-1 in array (C) order, float64."""
    nx, ny, nz = size_xyz
    yy, xx = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    for z0 in range(0, nz, slices):
        z1 = min(z0 + slices, nz)
        zz = np.arange(z0, z1)[:, None, None]
        pts = np.stack(np.broadcast_arrays(xx[None], yy[None], zz), axis=-1).reshape(-1, 3).astype(np.float64)
        yield z0, z1, pts


def world_displacement(
    transform: Transform, frame: Frame, step: int | None = None, slices: int = SLAB, chunk: int = DEFAULT_CHUNK
) -> np.ndarray:
    """phi_step(x) - x at every T00 voxel as ITK physical vectors in mm: (nz, ny, nx, 3) float32."""
    nx, ny, nz = transform.size_xyz
    out = np.empty((nz, ny, nx, 3), dtype=np.float32)
    for z0, z1, pts in _slabs(transform.size_xyz, slices):
        disp = transform.apply_voxels(pts, step, chunk) - pts  # float64 voxels: no cancellation in float32
        out[z0:z1] = voxel_to_world_vectors(disp, frame.direction, frame.spacing_xyz).reshape(z1 - z0, ny, nx, 3)
    return out


def dense_detj(
    transform: Transform, step: int | None = None, slices: int = SLAB, chunk: int = DEFAULT_CHUNK
) -> np.ndarray:
    """det J of phi_step at every T00 voxel: (nz, ny, nx) float32 (unitless; the same in every unit)."""
    nx, ny, nz = transform.size_xyz
    out = np.empty((nz, ny, nx), dtype=np.float32)
    for z0, z1, pts in _slabs(transform.size_xyz, slices):
        out[z0:z1] = transform.jacobian_det_voxels(pts, step, chunk).reshape(z1 - z0, ny, nx)
    return out


def _image(array: np.ndarray, reference: sitk.Image, vector: bool = False) -> sitk.Image:
    image = sitk.GetImageFromArray(array, isVector=vector)
    image.CopyInformation(reference)
    return image


# ------------------------------------------------------------------------------------------- the export
def load_run_transform(case: ConvertedCase, run_dir: Path, device: str = "auto") -> tuple[Transform, Any, Frame]:
    """The fitted map of ``run_dir``, its run record (rnr.evaluation.evaluate.run_info) and T00's frame; InputError when
    the map lies on another grid than ``case``'s T00."""
    from .evaluate import run_info  # plotting modules: imported only when exporting

    transform, metadata = load_transform(run_dir / layout.CHECKPOINT, resolve_device(device))
    info = run_info(run_dir, metadata, transform, False, case)
    reference_path = case.image_path("T00")
    if tuple(transform.size_xyz) != case.size_xyz or not np.allclose(
        transform.spacing_xyz, case.spacing_xyz, atol=1e-3
    ):
        raise InputError(
            f"{run_dir / layout.CHECKPOINT}: expected a map on the grid of {reference_path} (size "
            f"{case.size_xyz}, spacing {case.spacing_xyz} mm), found size {transform.size_xyz}, spacing "
            f"{transform.spacing_xyz} mm"
        )
    return transform, info, Frame.of(read_header(reference_path))


def reference_image(frame: Frame) -> sitk.Image:
    """An empty image of ``frame``: the voxels of T00 are not needed, only its geometry."""
    reference = sitk.Image(list(frame.size_xyz), sitk.sitkUInt8)
    reference.SetSpacing(frame.spacing_xyz)
    reference.SetOrigin(frame.origin_xyz)
    reference.SetDirection(tuple(frame.direction.ravel()))
    return reference


def export_run(
    case_dir: str | Path,
    run_dir: str | Path,
    out_dir: str | Path,
    device: str = "auto",
    steps: bool = True,
    warped: bool = True,
    detj: bool = True,
) -> dict[str, Any]:
    """Write the files of the module docstring for one run into ``out_dir``; return the manifest.

    Args:
        case_dir: the converted case the run was fitted on. run_dir: the run folder (checkpoint.pt, run.json).
        device: where to evaluate the map (``auto``: CUDA when available).
        steps: also the fields (and warped phases) of phi_1..phi_N-1 of a stepped map.
        warped, detj: write the warped images / the det J map.

    Raises:
        InputError: missing or unreadable checkpoint, a run of another case or grid.
    """
    from .evaluate import panel_pairs  # plotting modules: imported only when exporting

    start = time.perf_counter()
    case: ConvertedCase = load_case(case_dir)
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    transform, info, frame = load_run_transform(case, run_dir, device)
    reference_path = case.image_path("T00")
    reference = reference_image(frame)

    files: list[dict[str, Any]] = []
    n_steps = transform.n_steps

    def field(name: str, step: int | None, what: str) -> None:
        write_image(out_dir / name, _image(world_displacement(transform, frame, step), reference, vector=True))
        files.append({"file": name, "kind": "displacement_field", "step": step or n_steps, "what": what})

    field(FIELD, None, "displacement field of the full map phi (T00 -> T50), mm, ITK convention")
    if steps and n_steps > 1:
        for n in range(1, n_steps):
            field(field_step_name(n), n, f"displacement field of phi_{n} (step {n} of {n_steps}), mm, ITK convention")
    if warped:
        for interval, fixed, moving, step in panel_pairs(case, transform, info.pairing):
            full = step is None or step == n_steps
            if not full and not steps:
                continue
            name = warped_name(moving, None if full else step)
            volume = warp_volume(transform, case.image(moving), None if full else step)
            write_image(out_dir / name, _image(volume, reference))
            files.append(
                {
                    "file": name,
                    "kind": "warped_image",
                    "step": n_steps if full else step,
                    "phase": moving,
                    "compare_with": fixed,
                    "interval": interval,
                    "what": f"{moving} sampled at phi{'' if full else f'_{step}'}(x) on the T00 grid (HU, trilinear, "
                    f"edge value outside), to compare with {fixed}",
                }
            )
    if detj:
        write_image(out_dir / DETJ, _image(dense_detj(transform), reference))
        files.append({"file": DETJ, "kind": "jacobian_determinant", "step": n_steps, "what": "det J of phi"})

    manifest = {
        "schema": SCHEMA,
        "case": case.case,
        "configuration": info.configuration,
        "method": info.method,
        "transform_kind": transform.kind,
        "n_steps": n_steps,
        "pairing": info.pairing,
        "convention": CONVENTION,
        "reference_image": str(reference_path),
        "geometry": {
            "size_xyz": list(frame.size_xyz),
            "spacing_xyz": list(frame.spacing_xyz),
            "origin_xyz": list(frame.origin_xyz),
            "direction": frame.direction.ravel().tolist(),
        },
        "files": files,
        "source": {"case_dir": str(case.path), "run_dir": str(run_dir)},
        "wall_s": time.perf_counter() - start,
    }
    write_json(out_dir / MANIFEST, manifest)
    return manifest


def export_l2r(case_dir: str | Path, run_dir: str | Path, out_dir: str | Path, device: str = "auto") -> dict[str, Any]:
    """Write a run's map as Learn2Reg's ``disp_{N}_{N}.nii.gz`` (and ``export.json``, last) into ``out_dir``;
    return the manifest. The field is the same as ``field.nii.gz`` of :func:`export_run`, in voxels along the
    index axes instead of mm along the world axes (rnr/data/l2r.py)."""
    start = time.perf_counter()
    case = load_case(case_dir)
    out_dir = Path(out_dir)
    transform, info, frame = load_run_transform(case, Path(run_dir), device)
    reference = reference_image(frame)
    world = world_displacement(transform, frame)
    disp = world_to_voxel_vectors(world, frame.direction, frame.spacing_xyz)
    del world
    name = l2r.l2r_name(case.case, case.case)
    write_image(out_dir / name, l2r.l2r_image(disp, reference))
    manifest = {
        "schema": L2R_SCHEMA,
        "case": case.case,
        "configuration": info.configuration,
        "method": info.method,
        "fixed": "T00",
        "moving": "T50",
        "convention": l2r.CONVENTION,
        "files": [{"file": name, "kind": "l2r_displacement_field", "what": "phi(p) - p in voxels, T00 -> T50"}],
        "reference_image": str(case.image_path("T00")),
        "source": {"case_dir": str(case.path), "run_dir": str(run_dir)},
        "wall_s": time.perf_counter() - start,
    }
    write_json(out_dir / layout.MANIFEST, manifest)
    return manifest
