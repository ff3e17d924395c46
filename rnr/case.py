"""Read a converted case folder (written by ``rnr convert``; file names in layout.py).

Everything downstream of conversion (segment, register, evaluate, bench) reads cases through this module,
so the on-disk format is known in exactly two places: the writer (dirlab.py) and this reader.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from . import coords, layout
from .io import InputError, array_from_image, read_csv, read_image, read_json

# Tolerance when comparing a mask's spacing with the image's (mm); DIR-Lab spacings have 2 decimals.
_SPACING_TOL = 1e-3


@dataclass(frozen=True)
class ConvertedCase:
    """A converted DIR-Lab (or phantom) case on disk.

    Attributes:
        path: the case folder.
        case: case number (1..10).
        size_xyz: (nx, ny, nz) voxels.
        spacing_xyz: (sx, sy, sz) mm.
        phases: phases whose volume is present, in time order (T00 and T50 always).
    """

    path: Path
    case: int
    size_xyz: tuple[int, int, int]
    spacing_xyz: tuple[float, float, float]
    phases: tuple[str, ...]
    info: dict = field(repr=False, compare=False, default_factory=dict)

    @property
    def shape_zyx(self) -> tuple[int, int, int]:
        return coords.size_xyz_to_shape_zyx(self.size_xyz)

    def image_path(self, phase: str) -> Path:
        return self.path / layout.image_name(phase)

    def image(self, phase: str) -> np.ndarray:
        """Volume of ``phase`` in HU, float32, shape (nz, ny, nx)."""
        if phase not in self.phases:
            raise InputError(f"{self.path}: phase {phase} is not part of this case (has {', '.join(self.phases)})")
        path = self.image_path(phase)
        arr = array_from_image(read_image(path)).astype(np.float32)
        if arr.shape != self.shape_zyx:
            raise InputError(f"{path}: expected array shape (z, y, x) = {self.shape_zyx}, found {arr.shape}")
        return arr

    @property
    def has_intermediate(self) -> bool:
        """True when all of T00..T50 are present."""
        return all(p in self.phases for p in layout.PHASES)

    def landmarks(self, phase: str) -> np.ndarray:
        """The 300 landmarks of ``phase`` (T00 or T50): 0-based voxel (x, y, z), shape (300, 3), float64."""
        return self._landmark_file(self.path / layout.landmarks_name(phase))

    def sampled4d(self, phase: str) -> np.ndarray | None:
        """The 75 Sampled4D landmarks of ``phase``, 0-based voxel (x, y, z), (75, 3); None when absent."""
        path = self.path / layout.sampled4d_name(phase)
        return self._landmark_file(path) if path.is_file() else None

    def _landmark_file(self, path: Path) -> np.ndarray:
        frame = read_csv(path, columns=layout.LANDMARK_COLUMNS)
        return frame[["x_vox", "y_vox", "z_vox"]].to_numpy(dtype=np.float64)

    @cached_property
    def provided_mask_path(self) -> Path | None:
        path = self.path / layout.MASK_PROVIDED
        return path if path.is_file() else None

    def load_mask(self, path: str | Path | None = None) -> np.ndarray:
        """A T00 lung mask as bool (nz, ny, nx); default the registration mask ``mask_T00.nii.gz``.

        The mask must lie on the T00 grid: same size in (x, y, z) order and same spacing. A mask with the
        right voxel count but permuted axes is rejected (a known silent failure of DIR-Lab code).
        """
        path = Path(path) if path is not None else self.path / layout.MASK_T00
        image = read_image(path)
        check_on_grid(image, self.size_xyz, self.spacing_xyz, path)
        mask = array_from_image(image) > 0
        if not mask.any():
            raise InputError(f"{path}: the lung mask is empty (no non-zero voxel); registration needs lung points")
        return mask


def check_on_grid(
    image: sitk.Image, size_xyz: tuple[int, int, int], spacing_xyz: tuple[float, float, float], path: str | Path
) -> None:
    """Raise InputError unless ``image`` has exactly size ``size_xyz`` and spacing ``spacing_xyz``."""
    size = tuple(int(s) for s in image.GetSize())
    if image.GetDimension() != 3 or size != tuple(size_xyz):
        hint = ""
        if sorted(size) == sorted(size_xyz):
            hint = " (same voxel count in another axis order: the mask's axes are permuted)"
        raise InputError(
            f"{path}: expected a 3-D mask of size (x, y, z) = {tuple(size_xyz)} on the T00 grid, "
            f"found size {size}{hint}"
        )
    spacing = tuple(float(s) for s in image.GetSpacing())
    if any(abs(a - b) > _SPACING_TOL for a, b in zip(spacing, spacing_xyz, strict=True)):
        raise InputError(f"{path}: expected spacing (x, y, z) = {tuple(spacing_xyz)} mm, found {spacing}")


def load_case(path: str | Path) -> ConvertedCase:
    """Open a converted case folder; raise InputError naming the file if anything is missing."""
    path = Path(path)
    info = read_json(path / layout.CASE_JSON)
    try:
        size = tuple(int(v) for v in info["size_xyz"])
        spacing = tuple(float(v) for v in info["spacing_xyz"])
        case = int(info["case"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path / layout.CASE_JSON}: expected keys case, size_xyz, spacing_xyz ({exc})") from None
    phases = tuple(p for p in layout.PHASES if (path / layout.image_name(p)).is_file())
    for needed in ("T00", "T50"):
        if needed not in phases:
            raise InputError(f"{path / layout.image_name(needed)}: missing; a converted case needs T00 and T50")
    return ConvertedCase(
        path=path,
        case=case,
        size_xyz=size,
        spacing_xyz=spacing,
        phases=phases,  # type: ignore
        info=info,
    )
