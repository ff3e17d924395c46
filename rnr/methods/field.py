"""Score a displacement field a user brings: ``{method: field, fields: "some/path/case{case}/field.nii.gz"}``.

Nothing is fitted. For each case the file named by the pattern (``{case}`` replaced by the case number;
a relative path starts in the working directory of ``rnr register``, in the workflow Snakemake's) is read,
checked and wrapped as a :class:`~rnr.fitting.transform.FieldTransform`, so ``rnr register`` writes a run
folder like any method's and ``rnr evaluate``, the tables, statistics and figures score it by the same code.

**The file format** (``format: itk``, the default; ``format: l2r`` reads Learn2Reg's voxel fields instead,
rnr/data/l2r.py) is the one ``rnr export`` writes and ITK defines for a displacement field (a
``sitk.DisplacementFieldTransform`` reads it as is):

* a 3-D image of 3-vectors (NIfTI, MetaImage, NRRD: anything SimpleITK reads), any float pixel type;
* on the T00 grid of the converted case: size, spacing, origin and direction equal to ``T00.nii.gz``'s
  (spacing and origin within :data:`GRID_TOL_MM`, direction within :data:`DIRECTION_TOL`);
* the vector at T00 voxel x is phi(x) - x, the displacement that carries the T00 point to its T50 position,
  in **millimetres along ITK's physical (LPS) axes**. With the converted images' direction diag(1, 1, -1)
  (rnr/data/dirlab_reader.py) the z component has the *opposite* sign to a displacement in DIR-Lab's index (and
  ``*_mm`` column) space: a point moving to larger slice numbers (inferior) has a negative z component.

Checks, each an :class:`~rnr.io.InputError` naming the file, what was expected and what was found: a
missing file, a file that is not a 3-D image of 3-vectors (a scalar image, a 4-D image with three volumes),
a different grid, non-finite values, and two unit errors that can be told from the data: vectors longer
than the whole image (not millimetres, e.g. micrometres) and vectors that are absolute positions phi(x)
instead of displacements phi(x) - x (rms |v - x| below half of rms |v|). A field in voxel units instead of
mm, or with the index-space sign of z, cannot be told apart from a valid one by its values and is the
user's responsibility (state it where the fields come from).

**Jacobians**: det J and folding come from the field itself, by central differences of the sampled field
with a one-voxel step (one-sided at the volume border), exactly as for demons (:class:`FieldTransform`).
Between voxel centres the field is interpolated trilinearly (ITK's DisplacementFieldTransform does the same),
so landmarks on voxel centres are mapped exactly by the stored vectors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from ..data.case import ConvertedCase
from ..fitting.phases import compared_terms
from ..fitting.transform import FieldTransform
from ..io import InputError, read_image_header
from .base import FitContext, Method, MethodOutcome
from .settings import FieldSettings

#: Spacing and origin of a field may differ from T00's by this much (mm): DIR-Lab spacings have two
#: decimals, and NIfTI stores the header in float32.
GRID_TOL_MM = 1e-3
#: Entries of the direction matrix may differ from T00's by this much (NIfTI's quaternion round trip).
DIRECTION_TOL = 1e-4


# ---------------------------------------------------------------------------------------------- conventions
@dataclass(frozen=True)
class Frame:
    """The physical frame of an ITK image: a voxel index i (x, y, z) sits at ``origin + direction @ (spacing * i)``.

    Attributes:
        size_xyz: (nx, ny, nz) voxels. spacing_xyz: mm. origin_xyz: mm, ITK's LPS world.
        direction: (3, 3) direction cosines, columns = the index axes in world coordinates.
    """

    size_xyz: tuple[int, int, int]
    spacing_xyz: tuple[float, float, float]
    origin_xyz: tuple[float, float, float]
    direction: np.ndarray

    @classmethod
    def of(cls, image: sitk.Image | sitk.ImageFileReader) -> Frame:
        """The frame of an image or of an ImageFileReader after ``ReadImageInformation`` (3-D only)."""
        return cls(
            tuple(int(s) for s in image.GetSize()),  # type: ignore[arg-type]
            tuple(float(s) for s in image.GetSpacing()),  # type: ignore[arg-type]
            tuple(float(s) for s in image.GetOrigin()),  # type: ignore[arg-type]
            np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3),
        )

    def describe(self) -> str:
        def fmt(values) -> str:
            # 6 significant digits (headers are float32) and no "-0".
            return "(" + ", ".join(f"{float(v) + 0.0:.6g}" for v in values) + ")"

        return (
            f"size (x, y, z) {self.size_xyz}, spacing {fmt(self.spacing_xyz)} mm, origin {fmt(self.origin_xyz)} mm, "
            f"direction {fmt(self.direction.ravel())}"
        )

    def extent_mm(self) -> float:
        """Length of the image's diagonal (mm), from the first to the last voxel centre."""
        return float(np.linalg.norm((np.asarray(self.size_xyz) - 1) * np.asarray(self.spacing_xyz)))


def voxel_to_world_vectors(disp_vox: np.ndarray, direction: np.ndarray, spacing_xyz: Sequence[float]) -> np.ndarray:
    """Displacements in voxels (..., 3) as (dx, dy, dz) along the index axes -> ITK physical vectors (..., 3)
    in mm: ``direction @ (spacing * d)``. With direction diag(1, 1, -1) only the sign of z changes. float32."""
    d = np.asarray(disp_vox, dtype=np.float32) * np.asarray(spacing_xyz, dtype=np.float32)
    return d @ np.asarray(direction, dtype=np.float32).T


def world_to_voxel_vectors(vec_mm: np.ndarray, direction: np.ndarray, spacing_xyz: Sequence[float]) -> np.ndarray:
    """Inverse of :func:`voxel_to_world_vectors`: ITK physical vectors in mm (..., 3) -> voxel displacements
    (dx, dy, dz) (..., 3), ``inv(direction) @ v / spacing``. float32."""
    inverse = np.linalg.inv(np.asarray(direction, dtype=np.float64)).astype(np.float32)
    return (np.asarray(vec_mm, dtype=np.float32) @ inverse.T) / np.asarray(spacing_xyz, dtype=np.float32)


def read_header(path: Path) -> sitk.ImageFileReader:
    """An ImageFileReader of ``path`` with the header read (rnr.io.read_image_header)."""
    return read_image_header(path)


def check_same_grid(found: Frame, expected: Frame, path: Path, reference: Path) -> None:
    """InputError unless ``found`` is ``expected`` (size exactly; spacing, origin, direction within tolerance)."""
    same = (
        found.size_xyz == expected.size_xyz
        and np.allclose(found.spacing_xyz, expected.spacing_xyz, rtol=0, atol=GRID_TOL_MM)
        and np.allclose(found.origin_xyz, expected.origin_xyz, rtol=0, atol=GRID_TOL_MM)
        and np.allclose(found.direction, expected.direction, rtol=0, atol=DIRECTION_TOL)
    )
    if not same:
        raise InputError(
            f"{path}: expected a field on the T00 grid of {reference} ({expected.describe()}), found {found.describe()}"
        )


def read_field(path: str | Path, case: ConvertedCase) -> np.ndarray:
    """Read and check a displacement field file for ``case`` (module docstring); return the displacement in
    voxels, (nz, ny, nx, 3) float32 of (dx, dy, dz) along the index axes, T00 voxel x -> T50 position x + d."""
    path = Path(path)
    reference = case.image_path("T00")
    expected = Frame.of(read_header(reference))
    reader = read_header(path)
    dim, comps = reader.GetDimension(), reader.GetNumberOfComponents()
    if dim != 3 or comps != 3:
        hint = " (a 4-D image of three volumes is not ITK's layout: write one 3-vector per voxel)" if dim == 4 else ""
        raise InputError(
            f"{path}: expected a 3-D displacement field with a 3-vector (x, y, z in mm) per voxel, found a "
            f"{dim}-D image with {comps} component(s) per voxel{hint}"
        )
    found = Frame.of(reader)
    check_same_grid(found, expected, path, reference)
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise InputError(f"{path}: cannot read the voxels ({str(exc).strip().splitlines()[-1]})") from None
    vec = sitk.GetArrayViewFromImage(image)  # (nz, ny, nx, 3), ITK physical components (x, y, z)
    bad = int(np.count_nonzero(~np.isfinite(vec)))
    if bad:
        raise InputError(f"{path}: expected finite displacements (mm), found {bad} NaN or infinite value(s)")
    vec = np.asarray(vec, dtype=np.float32)
    # Positions first: a position field is also "too long" near the far corner, and this says what it is.
    _check_not_positions(vec, found, path)
    length = float(np.sqrt(np.square(vec, dtype=np.float64).sum(axis=-1).max()))
    extent = found.extent_mm()
    if length > extent:
        raise InputError(
            f"{path}: expected displacements in mm (ITK physical units); found vectors up to "
            f"{length:.4g} long, more than the {extent:.1f} mm diagonal of the T00 image"
        )
    return world_to_voxel_vectors(vec, found.direction, found.spacing_xyz)


def _check_not_positions(vec: np.ndarray, frame: Frame, path: Path, slices: int = 8) -> None:
    """InputError when the vectors look like absolute positions phi(x) rather than displacements phi(x) - x.

    For a displacement field |v - x| is about the size of the image while |v| is the motion (mm to cm); for
    a position field it is the other way round. Computed a few slices at a time (memory)."""
    nx, ny, _ = frame.size_xyz
    jj, ii = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    step = np.asarray(frame.spacing_xyz) * 1.0
    sum_v, sum_diff = 0.0, 0.0
    for z0 in range(0, vec.shape[0], slices):
        part = vec[z0 : z0 + slices].astype(np.float64)
        kk = np.arange(z0, z0 + len(part))[:, None, None]
        index = np.stack(np.broadcast_arrays(ii[None], jj[None], kk), axis=-1)
        world = (index * step) @ frame.direction.T + np.asarray(frame.origin_xyz)
        sum_v += float(np.square(part).sum())
        sum_diff += float(np.square(part - world).sum())
    if sum_diff < 0.25 * sum_v:  # rms |v - x| < rms |v| / 2
        n = vec.shape[0] * vec.shape[1] * vec.shape[2]
        raise InputError(
            f"{path}: expected displacements phi(x) - x in mm, found what looks like absolute positions phi(x) "
            f"(rms |v - x| = {np.sqrt(sum_diff / n):.1f} mm is less than half of rms |v| = {np.sqrt(sum_v / n):.1f} "
            "mm); subtract the voxel positions"
        )


# ---------------------------------------------------------------------------------------------- the method
class ImportedFieldTransform(FieldTransform):
    """A displacement field brought by the user (:class:`FieldTransform` under its own checkpoint ``kind``,
    so a run record says where the map came from)."""

    kind = "field"


def fit(ctx: FitContext[FieldSettings]) -> MethodOutcome:
    """Read ``fields`` for ``ctx.case`` (module docstring); no fitting: wall time 0, no iterations, empty log."""
    params = ctx.settings.params
    path = params.path(ctx.case.case)
    if not path.is_file():
        raise InputError(
            f"{path}: displacement field of case {ctx.case.case} not found (setting 'fields' = {params.fields!r}, "
            f"relative paths start in {Path.cwd()})"
        )
    if params.format == "l2r":
        from ..data.l2r import read_l2r_field

        disp = read_l2r_field(path, ctx.case)
    else:
        disp = read_field(path, ctx.case)
    transform = ImportedFieldTransform(ctx.case.size_xyz, ctx.case.spacing_xyz, disp).to(ctx.device)
    return MethodOutcome(
        transform=transform,
        log=pd.DataFrame({"iteration": [], "loss": [], "elapsed_s": []}),
        wall_s=0.0,
        iterations=0,
        batch_size=None,
        n_points=int(np.count_nonzero(ctx.mask)),
        compared_terms=[t.label for t in compared_terms("seed", False, 1)],
        extra={"fields_file": str(path), "fields_format": params.format},
    )


METHOD = Method(
    name="field",
    settings=FieldSettings,
    fit=fit,
    transforms=(ImportedFieldTransform,),
    summary="no fitting: score displacement fields you bring (ITK convention, T00 grid, mm; see rnr export)",
)
