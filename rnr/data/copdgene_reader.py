"""DIR-Lab COPDgene layout: find a case's files tolerantly, read and validate them, convert a case.

What is read (``COPDGENE_DIR`` is the folder holding the unpacked ``copd{N}`` folders)::

    COPDGENE_DIR/
      geometry.json                     optional: per-case size/spacing, overrides the COPDgene table
      copd1/copd1/                      as distributed (a folder of the same name inside); also copd1/ alone,
                                        COPD1/, or every file flat in COPDGENE_DIR (case-insensitive)
        copd1_iBHCT.img                 inhale (-> T00), raw int16 little-endian, x fastest, HU + 1024
        copd1_eBHCT.img                 exhale (-> T50)
        copd1_300_iBH_xyz_r1.txt        300 rows "x y z", 1-based voxel indices (row i of both files: one point)
        copd1_300_eBH_xyz_r1.txt

Two breath-hold phases only: inhale plays T00's role (the landmarks are mapped from it), exhale T50's. A
converted COPDgene case has ``T00.nii.gz`` and ``T50.nii.gz`` and nothing in between, so a method that needs
the intermediate phases T10..T40 cannot run on it (rnr.plan stops such a configuration).

File forms. Copies in circulation differ in the landmark text: integers or six-decimal floats
(``158.000000``), tab-separated with or without a space before each value and a trailing tab, LF or CRLF.
:func:`rnr.data.dirlab_reader.read_landmarks` reads all of them (and refuses a value that is not a whole voxel index).

Padding. The scanner reconstructs a circle inscribed in the 512 x 512 slice; the corners outside it hold a
padding value far below air (raw values near 0 or negative, i.e. below :data:`PADDING_BELOW_HU`). Padding is
not air: it is counted, set to :data:`PADDING_FILL_HU` (the air floor, so that segmentation and the
similarity losses see outside air there) and left out of the air check, which then checks the air actually
imaged. A file whose low values are all padding (no air at all within the field of view) is refused.

The 4DCT reader (:mod:`rnr.data.dirlab_reader`) does the rest: raw byte-size check, landmark parsing, the conversion's
image geometry (:data:`rnr.data.dirlab_reader.DIRECTION`, :data:`rnr.data.dirlab_reader.ORIGIN`); errors are the same
one-line
:class:`rnr.io.InputError` naming the file, what was expected and what was found.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import coords, layout
from ..io import InputError, write_csv, write_image, write_json
from . import dirlab_reader as dirlab
from .dirlab_reader import (
    AIR_WINDOW_HU,
    DIRECTION,
    HU_OFFSET,
    N_LANDMARKS,
    ORIGIN,
    CaseGeometry,
    air_peak_hu,
    check_air,
    check_distinct_pairs,
    check_raw_size,
    read_landmarks,
    volume_image,
)

#: The two phases of a COPDgene case and the tag of their files: inhale (iBH) -> T00, exhale (eBH) -> T50.
PHASE_TAGS: dict[str, str] = {"T00": "i", "T50": "e"}
PHASES = tuple(PHASE_TAGS)
#: Voxels below this HU (raw value below -476) are padding outside the scanner's field of view, not air
#: (air is -1000 HU, its noise reaches the raw floor -1024 HU at most).
PADDING_BELOW_HU = -1500
#: What padding becomes in the converted image: the air floor (raw 0).
PADDING_FILL_HU = -HU_OFFSET

_SLICE_MM = 2.5


def _g(size_z: int, inplane: float) -> CaseGeometry:
    return CaseGeometry((512, 512, size_z), (inplane, inplane, _SLICE_MM), source="COPDgene table (rnr/DATA.md)")


#: The ten COPDgene cases (rnr/DATA.md): 512 x 512 slices, size z and in-plane spacing per case, slices 2.5 mm.
COPDGENE_GEOMETRY: dict[int, CaseGeometry] = {
    1: _g(121, 0.625),
    2: _g(102, 0.645),
    3: _g(126, 0.652),
    4: _g(126, 0.590),
    5: _g(131, 0.647),
    6: _g(119, 0.633),
    7: _g(112, 0.625),
    8: _g(115, 0.586),
    9: _g(116, 0.664),
    10: _g(135, 0.742),
}


def case_geometry(copdgene_dir: str | Path, case: int) -> CaseGeometry:
    """Grid of ``case``: from ``copdgene_dir/geometry.json`` when it lists the case, else the COPDgene table."""
    return dirlab.case_geometry(copdgene_dir, case, COPDGENE_GEOMETRY, "COPDgene")


# ------------------------------------------------------------------------------------- finding files
@dataclass(frozen=True)
class CaseFiles:
    """The files of one COPDgene case: ``images`` and ``landmarks`` map ``"T00"`` / ``"T50"`` to paths."""

    case: int
    case_dir: Path
    images: dict[str, Path]
    landmarks: dict[str, Path]


def _patterns(case: int) -> dict[str, re.Pattern[str]]:
    # `0*{case}` followed by a separator: copd1 never matches copd10's files.
    n, sep = rf"copd0*{case}", r"[-_ ]"
    return {
        "image": re.compile(rf"^{n}{sep}([ie])bh(?:{sep}?ct)?\.img$", re.I),
        "landmarks": re.compile(rf"^{n}{sep}300{sep}([ie])bh(?:{sep}xyz)?(?:{sep}r\d+)?\.txt$", re.I),
    }


_EXAMPLES = {"image": "copd{n}_{t}BHCT.img", "landmarks": "copd{n}_300_{t}BH_xyz_r1.txt"}


def case_folder(copdgene_dir: str | Path, case: int) -> Path:
    """The folder searched for ``case``'s files: ``copd{N}`` (any letter case) in ``copdgene_dir`` when there is
    one, else ``copdgene_dir`` itself (files laid out flat)."""
    root = Path(copdgene_dir)
    if not root.is_dir():
        raise InputError(f"{root}: folder not found (expected the folder holding copd1 ... copd10)")
    found = sorted(p for p in root.iterdir() if p.is_dir() and re.fullmatch(rf"copd0*{case}", p.name, re.I))
    if len(found) > 1:
        raise InputError(
            f"{root}: expected one folder for case {case}, found {len(found)}: {', '.join(p.name for p in found)}"
        )
    return found[0] if found else root


def find_case_files(copdgene_dir: str | Path, case: int) -> CaseFiles:
    """Locate the two images and the two landmark files of ``case`` (module docstring for the names)."""
    case_dir = case_folder(copdgene_dir, case)
    pats = _patterns(case)
    found: dict[str, dict[str, list[Path]]] = {"image": {}, "landmarks": {}}
    for path in sorted(case_dir.rglob("*")):
        if not path.is_file():
            continue
        for kind, pattern in pats.items():
            m = pattern.match(path.name)
            if m:
                phase = "T00" if m.group(1).lower() == "i" else "T50"
                found[kind].setdefault(phase, []).append(path)
    chosen: dict[str, dict[str, Path]] = {}
    for kind, by_phase in found.items():
        for phase, paths in by_phase.items():
            if len(paths) > 1:
                raise InputError(
                    f"{case_dir}: expected one {kind} file for case {case} {phase}, found {len(paths)}: "
                    f"{', '.join(str(p.relative_to(case_dir)) for p in paths)}"
                )
        missing = [p for p in PHASES if p not in by_phase]
        if missing:
            names = ", ".join(_EXAMPLES[kind].format(n=case, t=PHASE_TAGS[p]) for p in missing)
            present = ", ".join(str(ps[0].relative_to(case_dir)) for ps in by_phase.values()) or "none"
            raise InputError(
                f"{case_dir}: case {case}: expected the {kind} file(s) {names} (any letter case, any sub-folder), "
                f"found {present}"
            )
        chosen[kind] = {p: by_phase[p][0] for p in PHASES}
    return CaseFiles(case=case, case_dir=case_dir, images=chosen["image"], landmarks=chosen["landmarks"])


# ------------------------------------------------------------------------------------------- images
def read_raw_image(path: str | Path, geometry: CaseGeometry) -> tuple[np.ndarray, int]:
    """Read a COPDgene raw image as HU, int16 (nz, ny, nx), and count its padding voxels.

    Padding (below :data:`PADDING_BELOW_HU`) is set to :data:`PADDING_FILL_HU` and left out of the air check
    (:func:`rnr.data.dirlab_reader.check_air` on the other voxels). Returns (hu, number of padding voxels).
    """
    path = Path(path)
    check_raw_size(path, geometry)
    raw = np.fromfile(path, dtype="<i2").reshape(geometry.shape_zyx)
    hu = raw.astype(np.int32) - HU_OFFSET
    padding = hu < PADDING_BELOW_HU
    n_padding = int(np.count_nonzero(padding))
    imaged = hu[~padding]
    if n_padding and air_peak_hu(imaged) is None:
        lo, hi = AIR_WINDOW_HU
        raise InputError(
            f"{path}: expected air near -1000 HU (air peak in [{lo:.0f}, {hi:.0f}] HU) within the field of view, "
            f"found padding where air is expected: {n_padding} voxels ({100.0 * n_padding / hu.size:.0f} %) below "
            f"{PADDING_BELOW_HU} HU and no air besides; check the HU offset (+{HU_OFFSET}) and the byte order"
        )
    check_air(imaged, path, raw=raw[~padding])
    hu[padding] = PADDING_FILL_HU
    return hu.astype(np.int16), n_padding


# --------------------------------------------------------------------------------------- conversion
def _output_names() -> list[str]:
    return [
        layout.CASE_JSON,
        *(layout.image_name(p) for p in PHASES),
        *(layout.landmarks_name(p) for p in PHASES),
    ]


def _remove_outputs(out: Path) -> None:
    """Delete every file :func:`convert_case` writes in ``out`` (case.json first); other files stay."""
    for name in _output_names():
        (out / name).unlink(missing_ok=True)


def convert_case(copdgene_dir: str | Path, case: int, out_dir: str | Path) -> Path:
    """Convert COPDgene ``case`` of ``copdgene_dir`` into the converted case folder ``out_dir``; return it.

    Writes (names in :mod:`rnr.layout`): ``T00.nii.gz`` (inhale) and ``T50.nii.gz`` (exhale), int16 HU with
    padding set to the air floor; ``landmarks_T00.csv`` and ``landmarks_T50.csv`` (300 rows); ``case.json``
    last. As for 4DCT (:func:`rnr.data.dirlab_reader.convert_case`): earlier outputs are removed first, names,
    byte sizes and landmarks are validated before anything is written, and a failure while writing removes this
    conversion's files again.
    """
    out = Path(out_dir)
    if out.is_dir():
        _remove_outputs(out)
    geometry = case_geometry(copdgene_dir, case)
    files = find_case_files(copdgene_dir, case)
    size, spacing = geometry.size_xyz, geometry.spacing_xyz
    for phase in PHASES:
        check_raw_size(files.images[phase], geometry)
    landmarks = {p: read_landmarks(files.landmarks[p], size, N_LANDMARKS) for p in PHASES}
    check_distinct_pairs(landmarks["T00"], landmarks["T50"], files.landmarks["T00"], files.landmarks["T50"])

    out.mkdir(parents=True, exist_ok=True)
    air: dict[str, float] = {}
    padding: dict[str, int] = {}
    try:
        for phase in PHASES:
            hu, padding[phase] = read_raw_image(files.images[phase], geometry)
            air[phase] = air_peak_hu(hu) or float("nan")
            write_image(out / layout.image_name(phase), volume_image(hu, spacing))
            del hu
        for phase, points in landmarks.items():
            write_csv(
                out / layout.landmarks_name(phase), layout.landmark_table(coords.from_dirlab_index(points), spacing)
            )
    except BaseException:
        _remove_outputs(out)
        raise

    write_json(
        out / layout.CASE_JSON,
        {
            "case": case,
            "dataset": "copdgene",
            "size_xyz": list(size),
            "spacing_xyz": list(spacing),
            "direction": list(DIRECTION),
            "origin": list(ORIGIN),
            "phases": list(PHASES),
            "sources": {
                "copdgene_dir": str(Path(copdgene_dir).resolve()),
                "case_dir": str(files.case_dir.resolve()),
                "geometry": geometry.source,
                "images": {p: str(files.images[p].relative_to(files.case_dir)) for p in PHASES},
                "landmarks": {p: str(files.landmarks[p].relative_to(files.case_dir)) for p in PHASES},
                "mask": None,
                "truth": None,
            },
            "conventions": {
                "arrays": "(z, y, x), raw index order, slice 0 = most superior",
                "phases": "T00 = inhale (iBH), T50 = exhale (eBH); no intermediate phases",
                "hu": f"raw - {HU_OFFSET}; padding below {PADDING_BELOW_HU} HU set to {PADDING_FILL_HU} HU",
                "landmarks": "x_vox,y_vox,z_vox 0-based = index in the file - 1; *_mm = index0 * spacing",
                "orientation": "direction diag(1, 1, -1) in ITK LPS world (code LPI)",
            },
            "air_peak_hu": air,
            "padding_voxels": padding,
            "n_landmarks": N_LANDMARKS,
            "has_sampled4d": False,
            "has_provided_mask": False,
        },
    )
    return out
