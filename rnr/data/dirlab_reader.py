"""DIR-Lab 4DCT layout: find a case's files tolerantly, read and validate them, convert a case.

What is read (``DIRLAB_DIR`` is the folder holding the unpacked ``Case{N}Pack`` folders)::

    DIRLAB_DIR/
      geometry.json                     optional: per-case size/spacing, overrides the DIR-Lab table
      Case1Pack/                        also Case8Deploy, case1pack, Case1 ... (case-insensitive)
        Images/case1_T00_s.img          raw 16-bit little-endian, HU + 1024; also case2_T00-ssm.img,
                                        case2_T10-s.img, case6_T00.img (any case, any sub-folder)
        ExtremePhases/Case1_300_T00_xyz.txt   300 rows "x y z", 1-based (also extremePhases/,
                                        case6_dirLab300_T50_xyz.txt, Case6_300_T00_xyz.txt)
        Sampled4D/case1_4D-75_T00.txt   optional: 75 rows per phase T00..T50
        Masks/case1_T00_mask.mhd        optional, user-made: a T00 lung mask (.mhd/.mha/.nii/.nii.gz/.nrrd);
                                        identity direction = raw voxel order (see rnr.data.case.oriented_mask)

Files are matched by case number and phase, ignoring letter case and the suffix variants above. A phase
matched by two files, a missing phase, a wrong byte size, a landmark file with the wrong number of rows, a
non-integer value or a point outside the volume: each raises :class:`rnr.io.InputError` naming the file,
what was expected and what was found.

Geometry. Real DIR-Lab images are headerless, so their size and spacing come from :data:`DIRLAB_GEOMETRY`
(rnr/DATA.md). A dataset may carry its own ``geometry.json`` in ``DIRLAB_DIR`` (the built-in phantom writes
one); an entry for the case there overrides the table::

    {"cases": {"1": {"size_xyz": [104, 84, 56], "spacing_xyz": [2.8, 2.8, 3.2]}, ...}}

Conversion (:func:`convert_case`, ``rnr convert``) writes the converted case folder of :mod:`rnr.layout`:
int16 HU NIfTI volumes in DIR-Lab's raw index order with direction :data:`DIRECTION` (see there), landmark
CSVs with 0-based voxel and millimetre columns (:mod:`rnr.coords`), the provided mask if any, and
``case.json`` last, so a folder without ``case.json`` is never mistaken for a finished conversion.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .. import coords, layout
from ..io import InputError, read_image, read_json, write_bytes, write_csv, write_image, write_json
from .case import check_mask_orientation, oriented_mask

#: Raw DIR-Lab values are HU + 1024.
HU_OFFSET = 1024
#: Rows in an ExtremePhases (T00/T50) landmark file and in a Sampled4D file.
N_LANDMARKS = 300
N_SAMPLED4D = 75
#: Optional per-dataset geometry file in the DIR-Lab folder (overrides :data:`DIRLAB_GEOMETRY`).
GEOMETRY_FILE = "geometry.json"

#: Direction matrix (row-major 3x3, ITK/LPS world) of every converted volume. DIR-Lab's raw index axes
#: run x: right -> left, y: anterior -> posterior, z: superior -> inferior (slice 1 is the most cranial).
#: In ITK's LPS world (+x = left, +y = posterior, +z = superior) that is diag(1, 1, -1): orientation code
#: "LPI". The voxel array itself is kept in raw index order (no flip), so landmark indices stay valid, and
#: viewers and lungmask (which reorients to LPS) see the patient the right way up.
DIRECTION = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
#: Origin of converted volumes (mm, LPS world). The landmark ``*_mm`` columns are index-space millimetres
#: (``index0 * spacing``, coords.py), not world coordinates; with this origin they differ only in z's sign.
ORIGIN = (0.0, 0.0, 0.0)

# Air check: the mode of the voxels at or below -500 HU must fall in this window (outside air ~ -1000,
# lung parenchyma ~ -850 when little air is in the field of view).
AIR_WINDOW_HU = (-1150.0, -800.0)
_AIR_CANDIDATE_HU = -500
_AIR_MIN_FRACTION = 1e-3


@dataclass(frozen=True)
class CaseGeometry:
    """Voxel grid of one case: ``size_xyz`` (nx, ny, nz) voxels, ``spacing_xyz`` (sx, sy, sz) mm."""

    size_xyz: tuple[int, int, int]
    spacing_xyz: tuple[float, float, float]
    source: str = "DIR-Lab table (rnr/DATA.md)"

    @property
    def shape_zyx(self) -> tuple[int, int, int]:
        return coords.size_xyz_to_shape_zyx(self.size_xyz)

    @property
    def n_bytes(self) -> int:
        """Exact size of one raw 16-bit image file."""
        nx, ny, nz = self.size_xyz
        return nx * ny * nz * 2


def _g(size: tuple[int, int, int], spacing: tuple[float, float, float]) -> CaseGeometry:
    return CaseGeometry(size, spacing)


#: The ten DIR-Lab cases (rnr/DATA.md): size (x, y, z) voxels, spacing (x, y, z) mm.
DIRLAB_GEOMETRY: dict[int, CaseGeometry] = {
    1: _g((256, 256, 94), (0.97, 0.97, 2.5)),
    2: _g((256, 256, 112), (1.16, 1.16, 2.5)),
    3: _g((256, 256, 104), (1.15, 1.15, 2.5)),
    4: _g((256, 256, 99), (1.13, 1.13, 2.5)),
    5: _g((256, 256, 106), (1.10, 1.10, 2.5)),
    6: _g((512, 512, 128), (0.97, 0.97, 2.5)),
    7: _g((512, 512, 136), (0.97, 0.97, 2.5)),
    8: _g((512, 512, 128), (0.97, 0.97, 2.5)),
    9: _g((512, 512, 128), (0.97, 0.97, 2.5)),
    10: _g((512, 512, 120), (0.97, 0.97, 2.5)),
}


# ------------------------------------------------------------------------------------------- geometry
def read_geometry_file(path: str | Path) -> dict[int, CaseGeometry]:
    """Parse a ``geometry.json`` (format in the module docstring) into case -> :class:`CaseGeometry`."""
    path = Path(path)
    data = read_json(path)
    cases = data.get("cases") if isinstance(data, dict) else None
    if not isinstance(cases, dict):
        raise InputError(
            f"{path}: expected a JSON object with a 'cases' mapping "
            f"(case -> {{size_xyz, spacing_xyz}}), found {type(data).__name__} "
            f"with keys {list(data) if isinstance(data, dict) else []}"
        )
    out: dict[int, CaseGeometry] = {}
    for key, entry in cases.items():
        try:
            case = int(key)
            size = tuple(int(v) for v in entry["size_xyz"])
            spacing = tuple(float(v) for v in entry["spacing_xyz"])
        except (KeyError, TypeError, ValueError):
            raise InputError(
                f'{path}: case {key!r}: expected {{"size_xyz": [nx, ny, nz], '
                f'"spacing_xyz": [sx, sy, sz]}}, found {entry!r}'
            ) from None
        if len(size) != 3 or len(spacing) != 3 or min(size) < 2 or min(spacing) <= 0:
            raise InputError(
                f"{path}: case {key}: expected three sizes >= 2 and three spacings > 0, "
                f"found size_xyz={list(size)}, spacing_xyz={list(spacing)}"
            )
        out[case] = CaseGeometry(size, spacing, source=str(path))  # type: ignore[arg-type]
    return out


def case_geometry(
    dirlab_dir: str | Path, case: int, known: dict[int, CaseGeometry] | None = None, dataset: str = "DIR-Lab"
) -> CaseGeometry:
    """Grid of ``case``: from ``dirlab_dir/geometry.json`` when it lists the case, else the table ``known`` of
    ``dataset`` (default: :data:`DIRLAB_GEOMETRY`; COPDgene's reader passes its own)."""
    known = DIRLAB_GEOMETRY if known is None else known
    path = Path(dirlab_dir) / GEOMETRY_FILE
    if path.is_file():
        table = read_geometry_file(path)
        if case in table:
            return table[case]
    if case not in known:
        raise InputError(
            f"{Path(dirlab_dir)}: case {case} is not a {dataset} case (expected {min(known)}..{max(known)}) and "
            f"{path} does not list it"
        )
    return known[case]


# ------------------------------------------------------------------------------------- finding files
@dataclass(frozen=True)
class CaseFiles:
    """The files of one DIR-Lab case. Phases map ``"T00"`` .. ``"T50"`` to paths."""

    case: int
    case_dir: Path
    images: dict[str, Path]
    landmarks: dict[str, Path]
    sampled4d: dict[str, Path] = field(default_factory=dict)
    mask: Path | None = None


def _phase(number: str) -> str:
    return f"T{int(number):02d}"


def _patterns(case: int) -> dict[str, re.Pattern[str]]:
    # `0*{case}` followed by a non-digit: case1 never matches case10's files.
    n = rf"case0*{case}"
    sep = r"[-_ ]"
    return {
        "image": re.compile(rf"^{n}{sep}t(\d{{2}})(?:{sep}[a-z0-9]+)*\.img$", re.I),
        "landmarks": re.compile(rf"^{n}{sep}(?:dirlab)?300{sep}t(\d{{2}})(?:{sep}xyz)?\.txt$", re.I),
        "sampled4d": re.compile(rf"^{n}{sep}4d{sep}75{sep}t(\d{{2}})(?:{sep}xyz)?\.txt$", re.I),
        "mask": re.compile(rf"^{n}{sep}t00{sep}mask\.(?:mhd|mha|nii|nii\.gz|nrrd)$", re.I),
    }


_EXAMPLES = {
    "image": "case{n}_{p}_s.img, case{n}_{p}-ssm.img or case{n}_{p}.img (under Images/)",
    "landmarks": "Case{n}_300_{p}_xyz.txt or case{n}_dirLab300_{p}_xyz.txt (under ExtremePhases/)",
    "sampled4d": "case{n}_4D-75_{p}.txt (under Sampled4D/)",
}


def find_case_dir(dirlab_dir: str | Path, case: int) -> Path:
    """The folder of ``case`` in ``dirlab_dir``: ``Case{N}Pack``, ``Case{N}Deploy`` or ``Case{N}`` (any letter
    case); ``dirlab_dir`` may also be that folder itself."""
    root = Path(dirlab_dir)
    if not root.is_dir():
        raise InputError(f"{root}: DIR-Lab folder not found (expected a folder holding Case{case}Pack/)")
    pattern = re.compile(rf"^case0*{case}(?:[-_ ]?(?:pack|deploy))?$", re.I)
    hits = sorted(p for p in root.iterdir() if p.is_dir() and pattern.match(p.name))
    if not hits and pattern.match(root.name):
        return root  # pointed straight at the case folder
    if len(hits) > 1:
        raise InputError(
            f"{root}: expected one folder for case {case}, found {len(hits)}: {', '.join(p.name for p in hits)}"
        )
    if not hits:
        found = sorted(p.name for p in root.iterdir() if p.is_dir())
        raise InputError(
            f"{root}: no folder for case {case}: expected Case{case}Pack/ (or "
            f"Case{case}Deploy/, any letter case); found folders: {', '.join(found) or 'none'}"
        )
    return hits[0]


def _collect(case_dir: Path, kind: str, pattern: re.Pattern[str], phases: tuple[str, ...]) -> dict[str, Path]:
    """Phase -> file for every file under ``case_dir`` matching ``pattern``; two files for one phase raise."""
    found: dict[str, list[Path]] = {}
    for path in sorted(case_dir.rglob("*")):
        m = pattern.match(path.name)
        if m and path.is_file():
            found.setdefault(_phase(m.group(1)), []).append(path)
    for phase, paths in found.items():
        if len(paths) > 1 and phase in phases:
            listing = ", ".join(str(p.relative_to(case_dir)) for p in paths)
            raise InputError(
                f"{case_dir}: phase {phase} found twice ({kind}): {listing}; expected exactly "
                f"one file per phase: remove or rename all but one"
            )
    return {p: v[0] for p, v in found.items() if p in phases}


def _missing(case_dir: Path, case: int, kind: str, missing: list[str], found: dict[str, Path], why: str) -> InputError:
    example = _EXAMPLES[kind].format(n=case, p=missing[0])
    listing = ", ".join(f"{p}: {found[p].relative_to(case_dir)}" for p in sorted(found)) or "none"
    return InputError(
        f"{case_dir}: missing {kind} file(s) for phase(s) {', '.join(missing)} ({why}); "
        f"expected e.g. {example}; found {listing}"
    )


def find_case_files(dirlab_dir: str | Path, case: int) -> CaseFiles:
    """Locate the images (T00, T50 required; T10..T40 all or none), the T00/T50 landmark files, the
    Sampled4D files (all six phases or none) and an optional T00 mask of ``case``."""
    case_dir = find_case_dir(dirlab_dir, case)
    pats = _patterns(case)
    images = _collect(case_dir, "image", pats["image"], layout.PHASES)
    missing = [p for p in ("T00", "T50") if p not in images]
    if missing:
        raise _missing(case_dir, case, "image", missing, images, "T00 and T50 are required")
    middle = [p for p in layout.PHASES[1:-1] if p in images]
    if middle and len(middle) < 4:
        gone = [p for p in layout.PHASES[1:-1] if p not in images]
        raise _missing(case_dir, case, "image", gone, images, "T10..T40 must be all present or all absent")
    landmarks = _collect(case_dir, "landmarks", pats["landmarks"], ("T00", "T50"))
    missing = [p for p in ("T00", "T50") if p not in landmarks]
    if missing:
        raise _missing(case_dir, case, "landmarks", missing, landmarks, "the 300 landmarks of T00 and T50")
    sampled = _collect(case_dir, "sampled4d", pats["sampled4d"], layout.PHASES)
    if sampled and len(sampled) < len(layout.PHASES):
        gone = [p for p in layout.PHASES if p not in sampled]
        raise _missing(case_dir, case, "sampled4d", gone, sampled, "Sampled4D needs all of T00..T50")
    masks = sorted(p for p in case_dir.rglob("*") if pats["mask"].match(p.name) and p.is_file())
    if len(masks) > 1:
        raise InputError(
            f"{case_dir}: expected at most one T00 mask, found {len(masks)}: "
            f"{', '.join(str(p.relative_to(case_dir)) for p in masks)}"
        )
    return CaseFiles(
        case=case,
        case_dir=case_dir,
        images=images,
        landmarks=landmarks,
        sampled4d=sampled,
        mask=masks[0] if masks else None,
    )


# ------------------------------------------------------------------------------------------- images
def read_raw_image(path: str | Path, geometry: CaseGeometry) -> np.ndarray:
    """Read a DIR-Lab raw image as HU, int16, shape (nz, ny, nx) (x fastest on disk).

    Checks the exact byte size (nx*ny*nz*2) and that the air peak lies near -1000 HU (catches files
    already in HU, big-endian files and wrong geometry).
    """
    path = Path(path)
    check_raw_size(path, geometry)
    raw = np.fromfile(path, dtype="<i2").reshape(geometry.shape_zyx)
    hu = raw.astype(np.int32) - HU_OFFSET
    check_air(hu, path, raw=raw)
    return hu.astype(np.int16)


def check_raw_size(path: str | Path, geometry: CaseGeometry) -> None:
    """Raise InputError unless ``path`` is a file of exactly ``geometry.n_bytes`` bytes (nx*ny*nz*2)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found (expected a raw DIR-Lab image)")
    found = path.stat().st_size
    expected = geometry.n_bytes
    if found != expected:
        nx, ny, nz = geometry.size_xyz
        slice_bytes = nx * ny * 2
        hint = ""
        if found % slice_bytes == 0:
            hint = f" = {found // slice_bytes} slices of {nx}x{ny} instead of {nz}"
        raise InputError(
            f"{path}: expected {expected} bytes (x*y*z*2 for size (x, y, z) = "
            f"{geometry.size_xyz}, 16-bit, from {geometry.source}), found {found} bytes{hint}"
        )


def air_peak_hu(hu: np.ndarray) -> float | None:
    """Mode (10-HU bins, bin centre) of the voxels at or below -500 HU; None when they are < 0.1 %."""
    low = hu[hu <= _AIR_CANDIDATE_HU]
    if low.size < _AIR_MIN_FRACTION * hu.size or low.size == 0:
        return None
    lo = int(low.min())
    counts = np.bincount(((low.astype(np.int64) - lo) // 10).ravel())
    return float(lo + 10 * int(np.argmax(counts)) + 5)


def check_air(hu: np.ndarray, path: str | Path, raw: np.ndarray | None = None) -> float:
    """Raise InputError unless the air peak of ``hu`` lies in :data:`AIR_WINDOW_HU`; return the peak (HU)."""
    peak = air_peak_hu(hu)
    lo, hi = AIR_WINDOW_HU
    if peak is not None and lo <= peak <= hi:
        return peak
    found = f"no voxel at or below {_AIR_CANDIDATE_HU} HU" if peak is None else f"an air peak at {peak:.0f} HU"
    hint = ""
    if peak is not None and lo - HU_OFFSET <= peak <= hi - HU_OFFSET:
        hint = "; the file seems to hold HU already (no +1024 offset)"
    elif raw is not None:
        swapped = raw.byteswap().astype(np.int32) - HU_OFFSET
        speak = air_peak_hu(swapped)
        if speak is not None and lo <= speak <= hi:
            hint = "; the file seems to be big-endian (byte-swapped it would be valid)"
    if not hint:
        hint = "; check the geometry (size, spacing) and the byte order"
    raise InputError(
        f"{path}: expected air near -1000 HU after subtracting {HU_OFFSET} "
        f"(air peak in [{lo:.0f}, {hi:.0f}] HU), found {found}{hint}"
    )


# ---------------------------------------------------------------------------------------- landmarks
def read_landmarks(path: str | Path, size_xyz: tuple[int, int, int], n_rows: int = N_LANDMARKS) -> np.ndarray:
    """Read a DIR-Lab landmark file: ``n_rows`` rows of three integers, 1-based (x, y, z) voxel indices.

    Tolerates any whitespace (tabs, spaces, trailing tabs), commas, CRLF/CR line ends and blank lines.
    Returns int64 (n_rows, 3), still 1-based (convert with :func:`rnr.coords.from_dirlab_index`).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found (expected {n_rows} landmark rows 'x y z')")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{path}: expected a text file of {n_rows} rows 'x y z', found binary data") from None
    rows: list[list[int]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = [f for f in re.split(r"[\s,;]+", line.strip()) if f]
        if not fields:
            continue
        if len(fields) != 3:
            raise InputError(f"{path}: line {number}: expected 3 values (x y z), found {len(fields)}: {line.strip()!r}")
        rows.append([_integer(f, path, number) for f in fields])
    if len(rows) != n_rows:
        raise InputError(f"{path}: expected {n_rows} landmark rows, found {len(rows)}")
    points = np.asarray(rows, dtype=np.int64)
    upper = np.asarray(size_xyz, dtype=np.int64)
    bad = np.nonzero(((points < 1) | (points > upper)).any(axis=1))[0]
    if bad.size:
        i = int(bad[0])
        hint = " (0 found: the file may be 0-based)" if (points == 0).any() else ""
        raise InputError(
            f"{path}: row {i + 1}: landmark (x, y, z) = {tuple(int(v) for v in points[i])} lies "
            f"outside the volume: expected 1-based indices 1..{tuple(int(v) for v in upper)}; "
            f"{bad.size} row(s) outside{hint}"
        )
    return points


def _integer(text: str, path: Path, line: int) -> int:
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{path}: line {line}: expected an integer voxel index, found {text!r}") from None
    if not np.isfinite(value) or value != round(value):
        raise InputError(f"{path}: line {line}: expected an integer voxel index, found {text!r}")
    return int(round(value))


# --------------------------------------------------------------------------------------- conversion
def volume_image(array_zyx: np.ndarray, spacing_xyz: tuple[float, float, float]) -> sitk.Image:
    """A (z, y, x) array as a SimpleITK image on the DIR-Lab grid (spacing, :data:`DIRECTION`,
    :data:`ORIGIN`)."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(array_zyx))
    image.SetSpacing(tuple(float(s) for s in spacing_xyz))
    image.SetDirection(DIRECTION)
    image.SetOrigin(ORIGIN)
    return image


def convert_case(dirlab_dir: str | Path, case: int, out_dir: str | Path) -> Path:
    """Convert DIR-Lab ``case`` from ``dirlab_dir`` into the converted case folder ``out_dir``; return it.

    Writes (names in :mod:`rnr.layout`): ``T00..T50.nii.gz`` (int16 HU, phases present), ``landmarks_T00.csv``
    and ``landmarks_T50.csv`` (300 rows), ``sampled4d_TPP.csv`` (75 rows) when Sampled4D is present,
    ``mask_provided.nii.gz`` when ``Masks/`` holds a T00 mask on the T00 grid, and ``case.json`` last.
    The outputs of an earlier conversion in ``out_dir`` are removed first (``case.json`` first); file names,
    image byte sizes, landmarks and mask are validated before any file is written; a failure while writing
    (e.g. an image failing the air check) removes this conversion's files again. So a failed conversion
    leaves no output at all: nothing that looks complete, nothing from an earlier run.
    """
    out = Path(out_dir)
    if out.is_dir():
        # The outputs of an earlier conversion go first: whatever fails below, the folder never mixes two
        # conversions and never looks complete (no case.json) until this one has finished.
        _remove_outputs(out)
    geometry = case_geometry(dirlab_dir, case)
    files = find_case_files(dirlab_dir, case)
    size, spacing = geometry.size_xyz, geometry.spacing_xyz

    # Validate everything small (including every image's byte size) before writing anything.
    for phase in layout.PHASES:
        if phase in files.images:
            check_raw_size(files.images[phase], geometry)
    landmarks = {p: read_landmarks(files.landmarks[p], size, N_LANDMARKS) for p in ("T00", "T50")}
    check_distinct_pairs(landmarks["T00"], landmarks["T50"], files.landmarks["T00"], files.landmarks["T50"])
    sampled = {p: read_landmarks(path, size, N_SAMPLED4D) for p, path in files.sampled4d.items()}
    mask, mask_note = None, None
    if files.mask is not None:
        # The mask's orientation is judged against T00's content: T00 is read (and air-checked) here.
        t00 = read_raw_image(files.images["T00"], geometry)
        mask, mask_note = _read_provided_mask(files.mask, geometry, t00)
        del t00

    out.mkdir(parents=True, exist_ok=True)
    air: dict[str, float] = {}
    phases = tuple(p for p in layout.PHASES if p in files.images)
    try:
        for phase in phases:
            hu = read_raw_image(files.images[phase], geometry)  # the air check can still fail here
            air[phase] = air_peak_hu(hu) or float("nan")
            write_image(out / layout.image_name(phase), volume_image(hu, spacing))
            del hu
        for phase, points in landmarks.items():
            write_csv(
                out / layout.landmarks_name(phase), layout.landmark_table(coords.from_dirlab_index(points), spacing)
            )
        for phase, points in sampled.items():
            write_csv(
                out / layout.sampled4d_name(phase), layout.landmark_table(coords.from_dirlab_index(points), spacing)
            )
        if mask is not None:
            write_image(out / layout.MASK_PROVIDED, volume_image(mask, spacing))
        truth = Path(dirlab_dir) / layout.TRUTH_SOURCE.format(case=case)
        if truth.is_file():  # a dataset that knows its exact motion (the phantom): evaluation scores against it
            write_bytes(out / layout.TRUTH, truth.read_bytes())
    except BaseException:
        _remove_outputs(out)  # a failed conversion leaves none of its files behind
        raise

    sources = {
        "dirlab_dir": str(Path(dirlab_dir).resolve()),
        "case_dir": str(files.case_dir.resolve()),
        "geometry": geometry.source,
        "images": {p: str(files.images[p].relative_to(files.case_dir)) for p in phases},
        "landmarks": {p: str(v.relative_to(files.case_dir)) for p, v in files.landmarks.items()},
        "sampled4d": {p: str(v.relative_to(files.case_dir)) for p, v in sorted(files.sampled4d.items())},
        "mask": str(files.mask.relative_to(files.case_dir)) if files.mask is not None else None,
        "mask_orientation": mask_note,
        "truth": layout.TRUTH_SOURCE.format(case=case) if (out / layout.TRUTH).is_file() else None,
    }
    write_json(
        out / layout.CASE_JSON,
        {
            "case": case,
            "size_xyz": list(size),
            "spacing_xyz": list(spacing),
            "direction": list(DIRECTION),
            "origin": list(ORIGIN),
            "phases": list(phases),
            "sources": sources,
            "conventions": {
                "arrays": "(z, y, x), DIR-Lab raw index order, slice 0 = most superior",
                "hu": f"raw - {HU_OFFSET}",
                "landmarks": "x_vox,y_vox,z_vox 0-based = DIR-Lab index - 1; *_mm = index0 * spacing",
                "orientation": "direction diag(1, 1, -1) in ITK LPS world (code LPI)",
            },
            "air_peak_hu": air,
            "n_landmarks": N_LANDMARKS,
            "has_sampled4d": bool(sampled),
            "has_provided_mask": mask is not None,
        },
    )
    return out


def _remove_outputs(out: Path) -> None:
    """Delete every file :func:`convert_case` writes in ``out`` (case.json first); other files stay."""
    names = [layout.CASE_JSON, layout.MASK_PROVIDED, layout.TRUTH, *(layout.landmarks_name(p) for p in ("T00", "T50"))]
    names += [layout.image_name(p) for p in layout.PHASES] + [layout.sampled4d_name(p) for p in layout.PHASES]
    for name in names:
        (out / name).unlink(missing_ok=True)


def _read_provided_mask(path: Path, geometry: CaseGeometry, t00_hu: np.ndarray) -> tuple[np.ndarray, str]:
    """A user's T00 mask as uint8 0/1 (z, y, x) in the converted T00 voxel order, and a note on how its
    orientation was taken (:func:`rnr.data.case.oriented_mask`: as stored when its direction is T00's or the
    identity, reoriented when it is another axis permutation or flip, refused when oblique). It must lie
    on the T00 grid, not be empty, and not fit T00 only upside down (:func:`rnr.data.case.check_mask_orientation`)."""
    image = read_image(path)
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(
            f"{path}: expected a scalar mask, found {image.GetNumberOfComponentsPerPixel()} components per voxel"
        )
    mask, note = oriented_mask(image, DIRECTION, geometry.size_xyz, geometry.spacing_xyz, path)
    if not mask.any():
        raise InputError(f"{path}: expected a lung mask with non-zero voxels, found an empty mask")
    check_mask_orientation(mask, t00_hu, path, note)
    return mask.astype(np.uint8), note


def check_distinct_pairs(t00: np.ndarray, t50: np.ndarray, t00_path: Path, t50_path: Path) -> None:
    """Raise InputError when two rows hold the same landmark pair (T00 row i == T00 row j and T50 row i ==
    T50 row j): one point counted twice weighs double in every TRE statistic."""
    pairs = np.concatenate([np.asarray(t00), np.asarray(t50)], axis=1)
    _, first, counts = np.unique(pairs, axis=0, return_index=True, return_counts=True)
    if (counts > 1).any():
        dup = [int(i) for i in first[counts > 1]]
        i = min(dup)
        rows = [int(r) + 1 for r in np.flatnonzero((pairs == pairs[i]).all(axis=1))]
        n_extra = int((counts[counts > 1] - 1).sum())
        raise InputError(
            f"{t00_path} and {t50_path.name}: rows {' and '.join(str(r) for r in rows)} are the same landmark "
            f"pair (T00 {tuple(int(v) for v in t00[i])}, T50 {tuple(int(v) for v in t50[i])}): expected "
            f"{len(pairs)} distinct pairs, found {n_extra} duplicated row(s); a point counted twice weighs "
            f"double in the TRE"
        )
