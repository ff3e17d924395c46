"""The phantom written in DIR-Lab COPDgene's layout (``rnr phantom --layout copdgene``): two breath-hold
phases per case, for exercising the COPDgene reader (rnr/data/copdgene_reader.py) and the whole chain on a fresh clone.

``write_dataset(out_dir)`` writes, for each case N::

    OUT/geometry.json                       size/spacing per case (rnr/data/copdgene_reader.py honours it)
    OUT/README_phantom.txt                  what this folder is
    OUT/copd{N}/copd{N}/copd{N}_iBHCT.img   inhale (T00), raw int16 little-endian, HU + 1024, padding outside
                        copd{N}_eBHCT.img   exhale (T50)     the field of view
                        copd{N}_300_iBH_xyz_r1.txt, copd{N}_300_eBH_xyz_r1.txt   300 rows, 1-based voxels
    OUT/truth/case{N}.json                  the motion's parameters and the landmark files' identity TRE

The copies of COPDgene in circulation differ, and the cases cycle through those differences
(:func:`folder_form`, :data:`LANDMARK_FORMS`): the doubled ``copd{N}/copd{N}/`` folder or a single one, an
upper-case ``COPD{N}`` folder, integer or six-decimal landmark values, tabs with or without space padding and
a trailing tab, LF or CRLF.

**What is the same as the 4DCT phantom**: anatomy, motion model, vessel trees, landmark choice and renderer
(rnr/data/phantom/write.py and its modules), case by case; exhale is the 4DCT phantom's T50 (breathing time 1).

**What differs**:

* the voxel is COPDgene's voxel of the same case (in-plane spacing, 2.5 mm slices) times
  :data:`~rnr.data.phantom.write.ACQUISITION_FACTOR` / ``scale``, as the 4DCT phantom copies DIR-Lab 4DCT's;
* every slice is 512 voxels wide at the real voxel, i.e. ``round(512 * scale / ACQUISITION_FACTOR)`` here,
  so the 4DCT phantom's body sits in a wider square of air (the field of view of the whole 512-wide slice);
* outside the inscribed circle of that square the scanner reconstructs nothing: those voxels hold the
  padding value :data:`PADDING_HU`, far below air, as the real files do;
* the motion is calibrated **loosely**: to :func:`motion_factor` times the 4DCT phantom's target (DIR-Lab
  4DCT's published identity TRE of the same case number), with its saturation raised by the same factor:
  twice, but a mean of at most :data:`MAX_TARGET_MM` (the motion model's tested range), so 7.8-15 mm.
  COPDgene's breath-hold motion is larger than 4DCT's (12-30 mm against 4-15 mm), which the factor
  imitates only partly; no case is fitted to COPDgene's own values (only case 1's is published). The images are not
  checked against COPDgene's (no realism table): the point is the layout, the file forms and the chain;
* no truth file for the evaluation (truth/case{N}.json is a record, not read by the pipeline) and no lung
  mask: a COPDgene folder has none, so configurations use ``masks: {method: threshold}``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np

from ... import coords
from ...io import atomic_path, write_json, write_text
from ..copdgene_reader import COPDGENE_GEOMETRY
from ..dirlab_reader import GEOMETRY_FILE, HU_OFFSET
from ..truth import TRUTH_DIR
from . import calibrate as cal
from .anatomy import grow_trees
from .motion import phase_time
from .render import rasterise_anatomy, render_phase
from .write import ACQUISITION_FACTOR, FIELD_OF_VIEW_MM, NOISE_HU, _case_params, check_options

#: Slices are this many voxels wide in the real data (x and y).
SLICE_WIDTH = 512
#: Value of the voxels outside the reconstructed circle (HU; raw -2000): far below air, as real padding is.
PADDING_HU = -3024
#: The loose calibration: target identity TRE and motion saturation = this times the 4DCT phantom's ...
MOTION_FACTOR = 2.0
#: ... but a target mean of at most this (mm; DIR-Lab 4DCT's largest, case 8): the motion model is built and
#: tested for 4DCT's range, and beyond it its forward map no longer converges for every landmark.
MAX_TARGET_MM = 15.0
#: The two phases written: inhale (iBH) at breathing time 0, exhale (eBH) at breathing time 1 (T50).
PHASE_TIMES = {"i": phase_time("T00"), "e": phase_time("T50")}

#: Landmark text forms seen in copies of COPDgene: (values, padded with a space + trailing tab, line end).
LANDMARK_FORMS: tuple[tuple[str, bool, str], ...] = (
    ("int", False, "\r\n"),
    ("float", False, "\n"),
    ("int", True, "\n"),
    ("float", True, "\r\n"),
)


def geometry(case: int, scale: float = 1.0) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    """Grid of COPDgene-layout phantom ``case`` at ``scale``: (size_xyz, spacing_xyz) (module docstring). The
    number of slices covers the 4DCT phantom's field of view along z; spacing is rounded to 4 decimals."""
    if case not in COPDGENE_GEOMETRY:
        raise ValueError(f"COPDgene phantom cases are 1..10, got {case}")
    real = COPDGENE_GEOMETRY[case].spacing_xyz
    spacing = tuple(round(float(s) * ACQUISITION_FACTOR / scale, 4) for s in real)
    width = int(round(SLICE_WIDTH * scale / ACQUISITION_FACTOR))
    nz = max(8, int(round(FIELD_OF_VIEW_MM[case][2] / spacing[2])))
    return (width, width, nz), spacing  # type: ignore[return-value]


def motion_factor(case: int) -> float:
    """How much larger than the 4DCT phantom's case ``case`` this case moves: :data:`MOTION_FACTOR`, reduced
    (not below 1) so that the target mean stays at most :data:`MAX_TARGET_MM`."""
    return min(MOTION_FACTOR, max(1.0, MAX_TARGET_MM / cal.TARGET_IDENTITY_TRE_MM[case]))


def folder_form(case: int) -> str:
    """The case folder, relative to the dataset folder: ``copd{N}/copd{N}`` as distributed, for case 2 a single
    ``copd2`` and for case 3 an upper-case ``COPD3/COPD3`` (the reader must find them all)."""
    if case == 2:
        return "copd2"
    if case == 3:
        return "COPD3/COPD3"
    return f"copd{case}/copd{case}"


def landmark_text(points_1based: np.ndarray, form: tuple[str, bool, str]) -> str:
    """One of the :data:`LANDMARK_FORMS`: rows of x y z (1-based, whole voxels) separated by tabs."""
    values, padded, end = form
    rows = []
    for point in np.asarray(points_1based, dtype=np.int64):
        cells = [f"{v:d}" if values == "int" else f"{v:.6f}" for v in point]
        rows.append("".join(f" {c}\t" for c in cells) if padded else "\t".join(cells))
    return "".join(row + end for row in rows)


def _embed(hu: np.ndarray, size_xyz: tuple[int, int, int], offset_xy: tuple[int, int], rng, noise_hu: float):
    """Place the rendered ``hu`` (z, y, x) at ``offset_xy`` voxels in a (nz, ny, nx) slab of air (cropping
    where the offset is negative); the new air carries noise of std ``noise_hu``."""
    nx, ny, nz = size_xyz
    out = (-1000.0 + noise_hu * rng.standard_normal((nz, ny, nx))).astype(np.float32)
    ox, oy = offset_xy
    src_x = slice(max(0, -ox), min(hu.shape[2], nx - ox))
    src_y = slice(max(0, -oy), min(hu.shape[1], ny - oy))
    dst_x = slice(src_x.start + ox, src_x.stop + ox)
    dst_y = slice(src_y.start + oy, src_y.stop + oy)
    out[:, dst_y, dst_x] = hu[:, src_y, src_x]
    return out


def outside_field_of_view(size_xyz: tuple[int, int, int]) -> np.ndarray:
    """Bool (ny, nx): voxel centres outside the circle inscribed in the square slice (the padding)."""
    nx, ny, _ = size_xyz
    y, x = np.meshgrid(np.arange(ny) - (ny - 1) / 2.0, np.arange(nx) - (nx - 1) / 2.0, indexing="ij")
    return np.hypot(x / (nx / 2.0), y / (ny / 2.0)) > 1.0


def _write_raw(path: Path, hu: np.ndarray, padding_yx: np.ndarray) -> None:
    """HU (z, y, x) -> raw int16 little-endian HU + 1024 (imaged voxels clipped at the scanner's floor, raw 0),
    with :data:`PADDING_HU` outside the field of view."""
    raw = np.clip(np.rint(hu) + HU_OFFSET, 0, 32767)
    raw[:, padding_yx] = PADDING_HU + HU_OFFSET
    with atomic_path(path) as tmp:
        raw.astype("<i2").tofile(tmp)


def write_case(out_dir: str | Path, case: int, seed: int = 0, scale: float = 1.0, noise_hu: float = NOISE_HU) -> dict:
    """Write COPDgene-layout phantom ``case`` into ``out_dir``; return its summary record."""
    check_options(scale, noise_hu)
    out = Path(out_dir)
    size_xyz, spacing_xyz = geometry(case, scale)
    spacing = np.asarray(spacing_xyz)
    extent = np.asarray(FIELD_OF_VIEW_MM[case])
    # The anatomy is rendered on its own field of view, then placed in the middle of the wider slice.
    native = tuple(max(8, int(round(e / s))) for e, s in zip(extent[:2], spacing[:2], strict=True)) + (size_xyz[2],)
    offset = ((size_xyz[0] - native[0]) // 2, (size_xyz[1] - native[1]) // 2)
    factor = motion_factor(case)
    cap = factor * cal.MAX_DISPLACEMENT_MM[case]
    anat, motion, rng = _case_params(case, seed, saturation_mm=(1.0 + cal.MAX_DISPLACEMENT_MARGIN) * cap)
    trees = grow_trees(anat, rng)
    segments = trees[0]
    # Landmarks must stay inside the rendered part (the slab the anatomy occupies) at the largest motion.
    inside = np.minimum(np.asarray(native), np.asarray(size_xyz))
    target = (factor * cal.TARGET_IDENTITY_TRE_MM[case], factor * cal.TARGET_IDENTITY_STD_MM[case])
    points, _, motion = cal.landmarks_and_motion(
        anat, trees, motion, inside, spacing, np.random.default_rng([seed, case, 100]), cap, target
    )

    shift = np.array([offset[0], offset[1], 0])
    files: dict[str, np.ndarray] = {}
    for tag, tau in PHASE_TIMES.items():
        exact = coords.mm_to_voxel(motion.forward(points, tau, lung=True), spacing) + shift
        files[tag] = np.rint(coords.to_dirlab_index(exact)).astype(np.int64)
        if ((files[tag] < 1) | (files[tag] > np.asarray(size_xyz))).any():
            raise RuntimeError(f"COPDgene phantom case {case}: a {tag}BH landmark left the volume (bug)")

    raster = rasterise_anatomy(anat, segments, spacing, np.random.default_rng([seed, case, 300]))
    padding = outside_field_of_view(size_xyz)
    case_dir = out / folder_form(case)
    name = case_dir.name  # copd{N} or COPD{N}: the files take the folder's letter case
    for k, (tag, tau) in enumerate(PHASE_TIMES.items()):
        shape = coords.size_xyz_to_shape_zyx(native)
        image = render_phase(
            raster, motion, tau, shape, spacing, np.random.default_rng([seed, case, 400 + k]), noise_hu
        )
        slab = _embed(image, size_xyz, offset, np.random.default_rng([seed, case, 500 + k]), noise_hu)
        _write_raw(case_dir / f"{name}_{tag}BHCT.img", slab, padding)
    del raster
    form = LANDMARK_FORMS[(case - 1) % len(LANDMARK_FORMS)]
    for tag, points_1based in files.items():
        write_text(case_dir / f"{name}_300_{tag}BH_xyz_r1.txt", landmark_text(points_1based, form))

    tre = cal.identity_tre(files["i"], files["e"], spacing_xyz)
    summary = {
        "case": case,
        "seed": seed,
        "scale": scale,
        "noise_hu": noise_hu,
        "size_xyz": list(size_xyz),
        "spacing_xyz": list(spacing_xyz),
        "rendered_size_xyz": list(native),
        "offset_xy_voxels": list(offset),
        "padding_hu": PADDING_HU,
        "padding_voxels_per_slice": int(padding.sum()),
        "motion": motion.to_dict(),
        "motion_factor": factor,
        "target_identity_tre_mm": target[0],
        "target_identity_std_mm": target[1],
        "identity_tre_files_mm": list(tre),
        "landmark_form": {"values": form[0], "padded": form[1], "line_end": repr(form[2])},
        "folder": folder_form(case),
    }
    write_json(out / TRUTH_DIR / f"case{case}.json", summary)
    return summary


_README = """Synthetic breath-hold CT pairs written by `rnr phantom --layout copdgene` (rnr/data/phantom/copdgene.py),
laid out like DIR-Lab COPDgene: copd{N}/copd{N}/copd{N}_iBHCT.img (inhale) and copd{N}_eBHCT.img (exhale), raw
int16 little-endian HU + 1024 with padding (-3024 HU) outside the circular field of view, and the 300
landmarks of each (1-based voxel indices; integer or six-decimal values, tabs, LF or CRLF by case).
geometry.json gives each case's size and spacing; truth/case{N}.json records the motion. Not patient data.
"""


def write_dataset(
    out_dir: str | Path,
    cases: Iterable[int] = range(1, 11),
    seed: int = 0,
    scale: float = 1.0,
    *,
    noise_hu: float = NOISE_HU,
    jobs: int = 1,
) -> Path:
    """Write the COPDgene-layout phantom cases ``cases`` into ``out_dir``; return ``out_dir``.

    ``geometry.json`` lists the written cases (merged with entries already there for other cases); ``jobs`` > 1
    writes that many cases at once in worker processes (each case is seeded on its own: same output)."""
    check_options(scale, noise_hu)
    cases = [int(c) for c in cases]
    bad = [c for c in cases if c not in COPDGENE_GEOMETRY]
    if bad:
        raise ValueError(f"--cases: COPDgene phantom cases are 1..10, got {bad}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    geometry_path = out / GEOMETRY_FILE
    entries: dict[str, dict] = {}
    if geometry_path.is_file():
        try:
            entries = dict(json.loads(geometry_path.read_text()).get("cases", {}))
        except (ValueError, AttributeError):
            entries = {}
    options = {"seed": seed, "scale": scale, "noise_hu": noise_hu}
    if jobs > 1 and len(cases) > 1:
        with ProcessPoolExecutor(min(jobs, len(cases))) as pool:
            summaries = list(pool.map(partial(write_case, out, **options), cases))
    else:
        summaries = [write_case(out, case, **options) for case in cases]
    for case, summary in zip(cases, summaries, strict=True):
        entries[str(case)] = {"size_xyz": summary["size_xyz"], "spacing_xyz": summary["spacing_xyz"], **options}
    write_json(
        geometry_path,
        {
            "description": "rnr phantom --layout copdgene: per-case grid (size in voxels x, y, z; spacing in mm); "
            "overrides the COPDgene geometry table for these cases",
            "cases": dict(sorted(entries.items(), key=lambda kv: int(kv[0]))),
        },
    )
    write_text(out / "README_phantom.txt", _README)
    return out
