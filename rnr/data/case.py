"""Read a converted case folder (written by ``rnr convert``; file names in layout.py), and check that what
is put next to it belongs to it: masks (grid, orientation, content) and checkpoints (case, grid).

Everything downstream of conversion (segment, register, evaluate, bench) reads cases through this module,
so the on-disk format is known in exactly two places: the writer (dirlab.py) and this reader.

Mask checks (used by ``rnr convert`` for a provided mask and by ``rnr segment`` for every mask):

* **Orientation** (:func:`oriented_mask`). A mask whose direction matrix equals T00's is taken as stored.
  A mask with an *identity* direction is taken in raw voxel order (DIR-Lab's order, what the original RNR
  README asked for: lungmask run on the raw image as loaded, saved without orientation). Any other
  direction that is an axis permutation and/or flip of T00's is reoriented to T00's voxel order (the note
  returned says how); an oblique direction is refused naming both directions.
* **Orientation by content** (:func:`check_mask_orientation`): whatever the header says, a mask fewer
  than :data:`MIN_AIR_FRACTION` of whose voxels are air-like in T00 (below :data:`AIR_HU`) while its
  z-flipped copy passes is refused as upside down (made on a z-flipped, LPS-ordered copy of the volume).
* **Content** (:func:`check_mask_content`): at least :data:`MIN_AIR_FRACTION` air-like voxels, at least
  :data:`MIN_VOLUME_L` litres, at least :data:`MIN_MAIN_FRACTION` of the voxels in the two largest
  connected components (26-connected). Measured on the phantom (scale 0.5, case 1): the true mask 98.5 %
  air-like, 1.84 L, 2 components (100 % in the two largest); the threshold mask 97.1 %, 1.88 L, 1 component;
  the true mask z-flipped 70.3 %; lungmask with random weights (the body's bounding box) 41.2 %, 8.3 L.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from .. import coords, layout
from ..io import InputError, array_from_image, read_csv, read_image, read_image_header, read_json

# Tolerance when comparing a mask's spacing with the image's (mm); DIR-Lab spacings have 2 decimals.
_SPACING_TOL = 1e-3
# Tolerance when comparing direction cosines.
_DIRECTION_TOL = 1e-3

#: A voxel of T00 below this value (HU) is air-like (lung parenchyma ~ -850 HU at inhale, tissue ~ 0 HU).
AIR_HU = -500.0
#: A lung mask needs at least this fraction of its voxels air-like in T00 (true lung masks: 0.95 - 0.99;
#: the phantom's true mask z-flipped: 0.70; a body mask: ~0.4).
MIN_AIR_FRACTION = 0.80
#: ... at least this volume in litres (adult lungs at inhale: 2 - 7 L; the phantom at scale 0.5: 1.8 L).
MIN_VOLUME_L = 0.5
#: ... and at least this fraction of its voxels in its two largest connected components (the two lungs).
MIN_MAIN_FRACTION = 0.90


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
    spacing = tuple(float(s) for s in image.GetSpacing())
    _check_grid(image.GetDimension(), size, spacing, size_xyz, spacing_xyz, path)


def _check_grid(dimension, size, spacing, size_xyz, spacing_xyz, path, note: str = "") -> None:
    if dimension != 3 or tuple(size) != tuple(size_xyz):
        hint = ""
        if sorted(size) == sorted(size_xyz):
            hint = " (same voxel count in another axis order: the mask's axes are permuted)"
        raise InputError(
            f"{path}: expected a 3-D mask of size (x, y, z) = {tuple(size_xyz)} on the T00 grid, "
            f"found size {tuple(size)}{hint}{note}"
        )
    if any(abs(a - b) > _SPACING_TOL for a, b in zip(spacing, spacing_xyz, strict=True)):
        raise InputError(f"{path}: expected spacing (x, y, z) = {tuple(spacing_xyz)} mm, found {tuple(spacing)}{note}")


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
    for phase in phases:
        check_image_header(path / layout.image_name(phase), size, spacing, path / layout.CASE_JSON)  # type: ignore
    return ConvertedCase(
        path=path,
        case=case,
        size_xyz=size,
        spacing_xyz=spacing,
        phases=phases,  # type: ignore
        info=info,
    )


def check_image_header(
    path: Path, size_xyz: tuple[int, int, int], spacing_xyz: tuple[float, float, float], record: Path
) -> None:
    """Raise InputError unless the image header of ``path`` gives the case's size and spacing (from
    ``record``, case.json). Reads the header only: cheap enough for every phase on every load."""
    reader = read_image_header(path)
    size = tuple(int(v) for v in reader.GetSize())
    spacing = tuple(float(v) for v in reader.GetSpacing())
    same_spacing = len(spacing) == 3 and all(
        abs(a - b) <= _SPACING_TOL for a, b in zip(spacing, spacing_xyz, strict=True)
    )
    if size != tuple(size_xyz) or not same_spacing:
        raise InputError(
            f"{path}: expected size (x, y, z) = {tuple(size_xyz)} and spacing {tuple(spacing_xyz)} mm as "
            f"recorded in {record.name} (every phase of a case shares the T00 grid), found size {size} and "
            f"spacing {tuple(round(v, 4) for v in spacing)}; the file was changed after conversion: "
            f"run rnr convert again"
        )


# -- masks: orientation ------------------------------------------------------------------------------------
def format_direction(direction) -> str:
    """A 3x3 direction matrix as text: ``diag(1, 1, -1)`` when diagonal, else its rows."""
    d = np.asarray(direction, dtype=np.float64).reshape(3, 3)

    def num(v: float) -> str:
        return f"{v:g}" if abs(v - round(v)) > _DIRECTION_TOL else f"{round(v):d}"

    if np.allclose(d, np.diag(np.diag(d)), atol=_DIRECTION_TOL):
        return "diag(" + ", ".join(num(v) for v in np.diag(d)) + ")"
    return "[" + "; ".join(", ".join(num(v) for v in row) for row in d) + "]"


_AXES = "xyz"


def oriented_mask(
    image: sitk.Image,
    reference_direction,
    size_xyz: tuple[int, int, int],
    spacing_xyz: tuple[float, float, float],
    path: str | Path,
) -> tuple[np.ndarray, str]:
    """A mask image's voxels as bool (nz, ny, nx) in the voxel order of the T00 image, whose direction is
    ``reference_direction``; and a one-line note saying how they were taken (for the logs and records).

    Equal directions: taken as stored. Identity direction: taken as stored, i.e. in raw DIR-Lab voxel order
    (the convention of masks saved without orientation). Another direction that maps each mask axis onto
    one T00 axis (a permutation and/or flips): reoriented. An oblique direction: refused. The reoriented
    mask must then lie on the T00 grid (size and spacing, :func:`check_on_grid`'s message).
    """
    if image.GetDimension() != 3:
        raise InputError(
            f"{path}: expected a 3-D mask of size (x, y, z) = {tuple(size_xyz)} on the T00 grid, "
            f"found a {image.GetDimension()}-D image"
        )
    ref = np.asarray(reference_direction, dtype=np.float64).reshape(3, 3)
    own = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    array = array_from_image(image)
    size = tuple(int(v) for v in image.GetSize())
    spacing = tuple(float(v) for v in image.GetSpacing())
    if np.allclose(own, ref, atol=_DIRECTION_TOL):
        note = f"direction {format_direction(own)} as T00's: voxels taken as stored"
    elif np.allclose(own, np.eye(3), atol=_DIRECTION_TOL):
        note = (
            f"identity direction (T00's is {format_direction(ref)}): voxels taken as stored, in raw DIR-Lab "
            f"order (slice 1 = top)"
        )
    else:
        relative = ref.T @ own  # T00 index axis b = sign * mask index axis a where relative[b, a] = sign
        rounded = np.round(relative)
        is_signed_permutation = np.allclose(relative, rounded, atol=_DIRECTION_TOL) and all(
            np.count_nonzero(rounded[b]) == 1 and np.count_nonzero(rounded[:, b]) == 1 for b in range(3)
        )
        if not is_signed_permutation:
            raise InputError(
                f"{path}: expected a direction that is T00's {format_direction(ref)}, the identity, or an "
                f"axis permutation or flip of T00's; found {format_direction(own)} (oblique): resample the mask "
                f"onto T00.nii.gz first"
            )
        source = [int(np.flatnonzero(rounded[b])[0]) for b in range(3)]
        flips = [rounded[b, source[b]] < 0 for b in range(3)]
        # numpy axis k holds point axis 2 - k.
        array = np.transpose(array, [2 - source[2 - k] for k in range(3)])
        for b in range(3):
            if flips[b]:
                array = np.flip(array, axis=2 - b)
        size = tuple(size[source[b]] for b in range(3))
        spacing = tuple(spacing[source[b]] for b in range(3))
        steps = []
        if source != [0, 1, 2]:
            steps.append("axes (x, y, z) taken from the mask's (" + ", ".join(_AXES[a] for a in source) + ")")
        if any(flips):
            steps.append("flipped along " + ", ".join(_AXES[b] for b in range(3) if flips[b]))
        note = f"reoriented from direction {format_direction(own)} to T00's {format_direction(ref)}: " + "; ".join(
            steps
        )
    _check_grid(3, size, spacing, size_xyz, spacing_xyz, path, f" ({note})" if "reoriented" in note else "")
    return np.ascontiguousarray(array) > 0, note


def check_mask_orientation(mask: np.ndarray, hu: np.ndarray, path: str | Path, note: str = "") -> None:
    """Refuse a mask that fits T00 only upside down: fewer than MIN_AIR_FRACTION of its voxels are air-like
    in ``hu`` (T00, (nz, ny, nx)) as given, but at least that many once flipped along z."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return
    air = hu < AIR_HU
    as_given = float(air[mask].mean())
    flipped = float(air[mask[::-1]].mean())
    if as_given < MIN_AIR_FRACTION <= flipped:
        raise InputError(
            f"{path}: the mask fits T00 only flipped along z: {as_given:.1%} of its voxels are below "
            f"{AIR_HU:g} HU in T00 as given, {flipped:.1%} z-flipped (expected >= {MIN_AIR_FRACTION:.0%}); "
            f"{note + '; ' if note else ''}it was probably made on a z-flipped (LPS-ordered) copy of the "
            f"volume: save it in DIR-Lab's raw voxel order (slice 1 = top) with an identity direction, or with "
            f"the direction of the volume it was made on"
        )


# -- masks: content ----------------------------------------------------------------------------------------
def mask_figures(mask: np.ndarray, hu: np.ndarray, spacing_xyz: tuple[float, float, float]) -> dict:
    """What a lung mask holds: voxels, air-like fraction in T00 (``hu`` < AIR_HU), volume in litres,
    connected components (26-connected) and the fraction of voxels in the two largest of them."""
    mask = np.asarray(mask, dtype=bool)
    voxels = int(mask.sum())
    labels, n = ndimage.label(mask, structure=np.ones((3, 3, 3), dtype=bool))
    sizes = np.sort(np.bincount(labels.ravel())[1:])[::-1] if n else np.zeros(0, dtype=np.int64)
    air = np.asarray(hu) < AIR_HU
    return {
        "voxels": voxels,
        "air_fraction": float(air[mask].mean()) if voxels else 0.0,
        "air_hu": AIR_HU,
        "volume_l": voxels * float(np.prod(spacing_xyz)) / 1e6,
        "n_components": int(n),
        "two_largest_fraction": float(sizes[:2].sum() / voxels) if voxels else 0.0,
        "z_flipped_air_fraction": float(air[mask[::-1]].mean()) if voxels else 0.0,
    }


def describe_figures(figures: dict) -> str:
    return (
        f"{figures['air_fraction']:.1%} of its voxels below {figures['air_hu']:g} HU in T00, "
        f"{figures['volume_l']:.2f} L, {figures['n_components']} connected component(s) "
        f"({figures['two_largest_fraction']:.1%} of it in the two largest)"
    )


def check_mask_content(
    mask: np.ndarray, hu: np.ndarray, spacing_xyz: tuple[float, float, float], path: str | Path, what: str
) -> dict:
    """:func:`mask_figures` of a mask; raise InputError naming ``path``, ``what`` (e.g. "the lungmask mask")
    and the figures when it is no lung mask by the thresholds of this module. Returns the figures."""
    figures = mask_figures(mask, hu, spacing_xyz)
    failed = (
        figures["air_fraction"] < MIN_AIR_FRACTION
        or figures["volume_l"] < MIN_VOLUME_L
        or figures["two_largest_fraction"] < MIN_MAIN_FRACTION
    )
    if failed:
        hint = ""
        if figures["air_fraction"] < MIN_AIR_FRACTION <= figures["z_flipped_air_fraction"]:
            hint = (
                f"; flipped along z it would be {figures['z_flipped_air_fraction']:.1%} air-like: the mask is "
                f"upside down relative to T00 (made on a z-flipped, LPS-ordered copy of the volume?)"
            )
        raise InputError(
            f"{path}: {what} does not look like a lung mask: expected at least {MIN_AIR_FRACTION:.0%} of its "
            f"voxels below {AIR_HU:g} HU in T00, at least {MIN_VOLUME_L:g} L and at least "
            f"{MIN_MAIN_FRACTION:.0%} of it in its two largest connected components; found "
            f"{describe_figures(figures)}{hint}"
        )
    return figures


# -- checkpoints -------------------------------------------------------------------------------------------
def check_checkpoint_case(metadata: dict, size_xyz, spacing_xyz, case: ConvertedCase, path: str | Path) -> None:
    """Raise InputError when a checkpoint (its metadata and grid, as :func:`rnr.methods.table.load_transform`
    returns them) was made for another case or on another grid than ``case``: a checkpoint copied into the
    wrong run folder would otherwise be evaluated against this case's landmarks."""
    made_for = metadata.get("case") if isinstance(metadata, dict) else None
    grid = (tuple(int(v) for v in size_xyz), tuple(round(float(v), 4) for v in spacing_xyz))
    expected = (tuple(case.size_xyz), tuple(round(float(v), 4) for v in case.spacing_xyz))
    other_case = made_for is not None and int(made_for) != case.case
    other_grid = grid[0] != expected[0] or any(
        abs(a - b) > _SPACING_TOL for a, b in zip(grid[1], expected[1], strict=True)
    )
    if other_case or other_grid:
        source = metadata.get("case_dir") if isinstance(metadata, dict) else None
        raise InputError(
            f"{path}: expected a checkpoint of case {case.case} (size (x, y, z) = {expected[0]}, spacing "
            f"{expected[1]} mm, from {case.path}), found one of case {made_for if made_for is not None else '?'} "
            f"(size {grid[0]}, spacing {grid[1]} mm{', from ' + str(source) if source else ''}): it was copied "
            f"from another run; register this case again"
        )
