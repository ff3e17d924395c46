"""Learn2Reg's displacement-field format, out (``rnr export --format l2r``, :func:`rnr.evaluation.export.export_l2r`)
and in (``method: field`` with ``format: l2r``).

**The format**, as Learn2Reg's evaluation reads it (MDL-UzL/L2R, ``evaluation/evaluation.py`` and
``evaluation/utils.py``, checked there): the file ``disp_{fixed}_{moving}.nii.gz`` is loaded with nibabel's
``get_fdata()``, giving an array of shape (H, W, D, 3):

* the first three axes are the fixed image's array axes as nibabel sees them, which for a NIfTI written by
  SimpleITK (as here) is ITK's index order i, j, k: the project's x, y, z (rnr/coords.py);
* the last axis holds the displacement along those axes, (dx, dy, dz), in **voxels of the fixed grid**
  (not mm, and not along the world axes: no direction matrix and no z flip enter);
* it points from fixed to moving: the fixed voxel p corresponds to the moving position p + u(p). Here the
  fixed image is T00 (inhale) and the moving image T50 (exhale), so u(p) = phi(p) - p, the project's own
  index-space displacement (the same vectors as ``field.nii.gz`` before its mm and direction conversion).

Learn2Reg names the pair by the case ids of the two images (``NLST_0101_0000.nii.gz`` -> ``0101``), so a
case N is written as ``disp_{N:04d}_{N:04d}.nii.gz`` (:func:`l2r_name`).

**How Learn2Reg scores it** (so that a reader can compare its numbers with ours): TRE is
``norm((fix_lms + u(fix_lms) - mov_lms) * spacing_mov)`` with u sampled by ``scipy.ndimage.map_coordinates``
at its default order 3 (cubic B-spline) at 0-based voxel landmarks; on whole-voxel landmarks (DIR-Lab's,
COPDgene's) that is the stored vector itself, as in our trilinear sampling, so the TRE agrees. Its SDlogJ
is ``std(log(clip(detJ + 3, 1e-9, 1e9)))`` with det J from central differences (zero-padded, two border
voxels cropped): the ``+ 3`` makes it a different number from the standard SDlogJ of det J, and its
folding count, taken after that clipping, is always 0. Our tables keep the standard definitions
(rnr/evaluation/metrics.py): std of log det J over the lung mask, folding = det J <= 0.

**Writing** uses SimpleITK (nibabel is not a dependency): the array (3, nz, ny, nx) as a 4-D scalar image,
which NIfTI stores as dims (nx, ny, nz, 3), exactly the (H, W, D, 3) that ``get_fdata()`` returns. Its first
three axes carry T00's spacing, origin and direction, so a viewer overlays it on T00; Learn2Reg ignores them.
**Reading** accepts that 4-D form and also a 3-D image of 3-vectors (NIfTI dims (H, W, D, 1, 3)), and
checks the grid size against T00's; the values cannot be told from mm by their size, so the unit is the
writer's responsibility (state it where the files come from).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..io import InputError
from .case import ConvertedCase

CONVENTION = (
    "disp_{fixed}_{moving}.nii.gz: Learn2Reg displacement field: nibabel get_fdata() gives (H, W, D, 3) = "
    "(x, y, z, component) in the fixed (T00) image's array axes; vector = phi(p) - p in voxels of the fixed grid "
    "along those axes, pointing from fixed (T00, inhale) to moving (T50, exhale)."
)


def l2r_name(fixed: int, moving: int) -> str:
    """Learn2Reg's file name of the field of the pair (fixed case id, moving case id): ``disp_0001_0001.nii.gz``."""
    return f"disp_{int(fixed):04d}_{int(moving):04d}.nii.gz"


def l2r_image(disp_vox: np.ndarray, reference: sitk.Image) -> sitk.Image:
    """Displacements (nz, ny, nx, 3) in voxels (dx, dy, dz along the index axes) -> the 4-D scalar image Learn2Reg
    reads, size (nx, ny, nz, 3), float32, with ``reference``'s spacing, origin and direction on its first
    three axes (unit spacing, zero origin on the fourth)."""
    disp = np.asarray(disp_vox, dtype=np.float32)
    if disp.ndim != 4 or disp.shape[-1] != 3:
        raise ValueError(f"expected displacements of shape (nz, ny, nx, 3), got {disp.shape}")
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.moveaxis(disp, -1, 0)), isVector=False)
    direction = np.eye(4)
    direction[:3, :3] = np.asarray(reference.GetDirection()).reshape(3, 3)
    image.SetSpacing((*reference.GetSpacing(), 1.0))
    image.SetOrigin((*reference.GetOrigin(), 0.0))
    image.SetDirection(tuple(direction.ravel()))
    return image


def read_l2r_field(path: str | Path, case: ConvertedCase) -> np.ndarray:
    """Read a Learn2Reg displacement field for ``case``; return (nz, ny, nx, 3) float32 voxel displacements
    (dx, dy, dz) along the index axes, T00 voxel p -> T50 position p + d (the form of
    :func:`rnr.methods.field.read_field`). InputError (one line: the file, what was expected and found) for a
    missing file, another layout or grid size, or non-finite values."""
    path = Path(path)
    expected = tuple(case.size_xyz)
    wanted = f"a Learn2Reg field of shape (H, W, D, 3) = {(*expected, 3)} (T00's grid, voxel units)"
    if not path.is_file():
        raise InputError(f"{path}: file not found (expected {wanted})")
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise InputError(f"{path}: cannot read it as an image ({str(exc).strip().splitlines()[-1]})") from None
    size, comps = tuple(image.GetSize()), image.GetNumberOfComponentsPerPixel()
    if len(size) == 4 and comps == 1 and size[3] == 3:
        array = np.moveaxis(sitk.GetArrayViewFromImage(image), 0, -1)  # (3, nz, ny, nx) -> (nz, ny, nx, 3)
    elif len(size) == 3 and comps == 3:
        array = sitk.GetArrayViewFromImage(image)  # (nz, ny, nx, 3)
    else:
        raise InputError(f"{path}: expected {wanted}, found an image of size {size} with {comps} component(s)")
    if tuple(size[:3]) != expected:
        raise InputError(f"{path}: expected {wanted}, found (H, W, D) = {tuple(size[:3])}")
    disp = np.array(array, dtype=np.float32)
    bad = int(np.count_nonzero(~np.isfinite(disp)))
    if bad:
        raise InputError(f"{path}: expected finite displacements (voxels), found {bad} NaN or infinite value(s)")
    return disp
