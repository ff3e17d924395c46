"""Writing the phantom in DIR-Lab's layout: ten cases, their truth and the realism table.

``write_dataset(out_dir)`` writes, for each case N in 1..10::

    OUT/geometry.json                         size/spacing per case (dirlab.py honours it)
    OUT/README_phantom.txt                    what this folder is
    OUT/Case{N}Pack/  (Case8Deploy for case 8)
        Images/<real naming>                  T00..T50, raw int16 little-endian, HU + 1024
                                              (case1_T00_s.img, case2_T00-ssm.img, case6_T00.img, ...)
        ExtremePhases/Case{N}_300_T{PP}_xyz.txt       cases 1-5; extremePhases/case{N}_dirLab300_T{PP}_xyz.txt
                                              cases 6-10. Rows as in the real files (:data:`LANDMARK_STYLE`):
                                              cases 2, 6, 7, 8, 10 " 82\\t 55\\t 72\\t", others "211\\t139\\t66"; CRLF
        Sampled4D/case{N}_4D-75_T{PP}.txt     75 of the 300 points, T00..T50 ("x\\ty\\tz", CRLF)
        Masks/case{N}_T00_mask.mhd (+ .zraw)  the true T00 lung mask, as a user-provided mask
    OUT/truth/case{N}.npz                     exact truth (see rnr.data.truth.load_truth_file)
    OUT/truth/case{N}.json                    the same scalars, human-readable, with per-phase lung figures
    OUT/truth/summary.csv                     the realism table (:data:`REALISM_COLUMNS`), one row per case

**Acquisition** (:func:`geometry`): the voxel is DIR-Lab's voxel of the same case times
:data:`ACQUISITION_FACTOR` along every axis, so the in-plane : slice ratio is DIR-Lab's (0.97-1.16 mm :
2.5 mm, slices 2.2-2.6 times the in-plane spacing); a factor of 1 would give 6-20 M voxels per case, which
a 2-core default run cannot register in its 15 minutes; 2.2 gives about 0.4-0.6 M. The field of view is
fixed per case (:data:`FIELD_OF_VIEW_MM`); ``scale`` divides the spacing. Rendering: render.py;
anatomy: anatomy.py; motion: motion.py; landmarks and calibration: calibrate.py.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from ... import coords, layout
from ...io import atomic_path, write_csv, write_json, write_text
from ..dirlab_reader import DIRECTION, GEOMETRY_FILE, HU_OFFSET, N_LANDMARKS, N_SAMPLED4D
from ..truth import TRUTH_DIR, load_truth
from . import calibrate as cal
from .anatomy import Anatomy, grow_trees
from .grid import (  # noqa: F401  (re-exported: the grid is part of what write.py documents)
    ACQUISITION_FACTOR,
    DIRLAB_VOXEL_MM,
    FIELD_OF_VIEW_MM,
    NOISE_HU,
    NOISE_RANGE_HU,
    PHANTOM_GEOMETRY,
    SCALE_RANGE,
    geometry,
)
from .motion import BREATHING, Motion, phase_time
from .render import lung_mask, rasterise_anatomy, render_phase

_TRUTH_DIR = "truth"
SUMMARY_FILE = "summary.csv"

# Ranges of the per-case motion parameters drawn from the seed (see Motion).
_AP_RANGE = (0.40, 0.50)
_LR_RANGE = (0.17, 0.23)
_LAG_RANGE = (0.8, 1.2)
_POST_RANGE = (0.25, 0.5)


def check_options(scale: float, noise_hu: float) -> None:
    """Raise ValueError (one line naming the option and its range) for an unsupported scale or noise."""
    if not SCALE_RANGE[0] <= scale <= SCALE_RANGE[1]:
        raise ValueError(
            f"--scale must be in [{SCALE_RANGE[0]:g}, {SCALE_RANGE[1]:g}] (below it a case has fewer than "
            f"{N_LANDMARKS} distinct landmark voxels), got {scale}"
        )
    if not NOISE_RANGE_HU[0] <= noise_hu <= NOISE_RANGE_HU[1]:
        raise ValueError(f"--noise must be in [{NOISE_RANGE_HU[0]:g}, {NOISE_RANGE_HU[1]:g}] HU, got {noise_hu}")


# ------------------------------------------------------------------------------------------- naming
def case_folder_name(case: int) -> str:
    return "Case8Deploy" if case == 8 else f"Case{case}Pack"


def image_file_name(case: int, phase: str) -> str:
    """DIR-Lab's own naming: case 1 ``_s``, cases 2-5 ``-ssm``, cases 6-10 bare."""
    if case == 1:
        return f"case1_{phase}_s.img"
    if case <= 5:
        return f"case{case}_{phase}-ssm.img"
    return f"case{case}_{phase}.img"


def landmark_file_path(case: int, phase: str) -> str:
    """Path of the 300-point file inside the case folder (ExtremePhases vs extremePhases as released)."""
    if case <= 5:
        return f"ExtremePhases/Case{case}_300_{phase}_xyz.txt"
    return f"extremePhases/case{case}_dirLab300_{phase}_xyz.txt"


def sampled4d_file_path(case: int, phase: str) -> str:
    return f"Sampled4D/case{case}_4D-75_{phase}.txt"


def mask_file_path(case: int) -> str:
    return f"Masks/case{case}_T00_mask.mhd"


# ------------------------------------------------------------------------------------------- writing
#: Text form of the 300-point files per case, as in the DIR-Lab release: "plain" rows ``211\t139\t66``,
#: "padded" rows `` 82\t 55\t 72\t`` (a space before and a tab after every integer). CRLF everywhere.
LANDMARK_STYLE: dict[int, str] = {c: "padded" if c in (2, 6, 7, 8, 10) else "plain" for c in range(1, 11)}


def _landmark_text(points_1based: np.ndarray, style: str) -> str:
    """DIR-Lab landmark text, one CRLF-terminated row per point; ``style`` "plain" or "padded"."""
    if style == "padded":
        lines = [f" {x}\t {y}\t {z}\t" for x, y, z in points_1based]
    elif style == "plain":
        lines = [f"{x}\t{y}\t{z}" for x, y, z in points_1based]
    else:
        raise ValueError(f"unknown landmark text style {style!r}")
    return "".join(line + "\r\n" for line in lines)


def _write_raw(path: Path, hu: np.ndarray) -> None:
    raw = np.clip(np.rint(hu) + HU_OFFSET, 0, 32767).astype("<i2")
    with atomic_path(path) as tmp:
        raw.tofile(tmp)


def _write_mhd(path: Path, image: sitk.Image) -> None:
    """Write an .mhd + .zraw pair so that the header (which names the data file) appears last."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmpdir = Path(tempfile.mkdtemp(prefix=".mhd.", dir=path.parent))
    try:
        sitk.WriteImage(image, str(tmpdir / path.name), useCompression=True)
        header = tmpdir / path.name
        for item in sorted(tmpdir.iterdir(), key=lambda p: p == header):
            os.replace(item, path.parent / item.name)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def _write_mask(path: Path, mask_zyx: np.ndarray, spacing_xyz: Sequence[float]) -> None:
    image = sitk.GetImageFromArray(np.asarray(mask_zyx, dtype=np.uint8))
    image.SetSpacing(tuple(float(s) for s in spacing_xyz))
    image.SetDirection(DIRECTION)
    _write_mhd(path, image)


def write_mask(dataset_dir: str | Path, case: int) -> Path:
    """(Re)write the true T00 lung mask of a written phantom case as ``Masks/case{N}_T00_mask.mhd``."""
    truth = load_truth(dataset_dir, case)
    path = Path(dataset_dir) / case_folder_name(case) / mask_file_path(case)
    _write_mask(path, truth.mask_T00, truth.spacing_xyz)
    return path


def _case_params(
    case: int, seed: int, saturation_mm: float | None = None
) -> tuple[Anatomy, Motion, np.random.Generator]:
    """Anatomy and (uncalibrated) motion of ``case``; the generator continues with the vessel trees.
    ``saturation_mm``: the motion's saturation (default: this case's largest DIR-Lab displacement + margin)."""
    extent = FIELD_OF_VIEW_MM[case]
    if saturation_mm is None:
        saturation_mm = (1.0 + cal.MAX_DISPLACEMENT_MARGIN) * cal.MAX_DISPLACEMENT_MM[case]
    rng = np.random.default_rng([seed, case])
    domes = (float(rng.uniform(-0.03, 0.03)), float(rng.uniform(-0.03, 0.03)))
    anat = Anatomy(extent, domes)  # type: ignore[arg-type]
    motion = Motion(
        extent,  # type: ignore[arg-type]
        domes,
        amplitude_mm=1.0,
        power=1.0,
        ap=float(rng.uniform(*_AP_RANGE)),
        lr=float(rng.uniform(*_LR_RANGE)),
        asym=float(rng.uniform(-0.2, 0.2)),
        post=float(rng.uniform(*_POST_RANGE)),
        lag_cc=float(rng.uniform(*_LAG_RANGE)),
        lag_ap=float(rng.uniform(*_LAG_RANGE)),
        wall_mm=float(rng.uniform(1.5, 3.0)),
        saturation_mm=saturation_mm,
    )
    return anat, motion, rng


#: Columns of the realism table (truth/summary.csv), one row per case; figures from the written images.
REALISM_COLUMNS: dict[str, str] = {
    "case": "case",
    "inplane_mm": "in-plane spacing (mm)",
    "slice_mm": "slice spacing = thickness (mm)",
    "lung_volume_T00_ml": "lung volume at T00 (ml)",
    "lung_volume_ratio": "lung volume T50 / T00",
    "mean_lung_hu_T00": "mean lung HU at T00",
    "mean_lung_hu_T50": "mean lung HU at T50",
    "lung_mass_ratio": "lung mass T50 / T00",
    "lung_mass_ratio_worst": "lung mass phase / T00 farthest from 1 (T10..T50)",
    "noise_air_hu": "noise std in the air outside the body (HU, T00, clipped at -1024)",
    "noise_tissue_hu": "noise std in still soft tissue beside the spine (HU, std(T50 - T00) / sqrt 2)",
    "ncc_true_motion": "NCC of T00 with T50 mapped by the true motion, over the T00 lungs",
    "identity_tre_mm": "identity TRE mean on the landmark files (mm)",
    "identity_std_mm": "identity TRE std on the landmark files (mm)",
}


def air_region(anat: Anatomy, size: Sequence[int], spacing: Sequence[float]) -> np.ndarray:
    """Bool (z, y, x): air outside the body, at least 15 % of the body's half axes beyond the skin (clear of
    the in-plane blur)."""
    x, y, _ = _axes(size, spacing)
    region = anat.body_radius(x, y) > 1.15
    return np.broadcast_to(region, coords.size_xyz_to_shape_zyx(tuple(size))).copy()


def still_tissue_region(anat: Anatomy, size: Sequence[int], spacing: Sequence[float]) -> np.ndarray:
    """Bool (z, y, x): soft tissue beside and behind the vertebral bodies, which does not move at all (the
    motion is exactly zero within 30 mm of the spine's axis): between the vertebra's rim (16 mm) and the
    lungs (24 mm from the axis), clear of both by more than a voxel's blur, and of the arches and the fat."""
    x, y, _ = _axes(size, spacing)
    spx, spy = anat.spine_centre()
    r = np.hypot(x - spx, y - spy)
    region = (r > 18.0) & (r < 22.0) & (np.abs(x - spx) > 8.0) & (anat.body_radius(x, y) < 0.88)
    return np.broadcast_to(region, coords.size_xyz_to_shape_zyx(tuple(size))).copy()


def _axes(size: Sequence[int], spacing: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, y, z = (np.arange(n) * float(s) for n, s in zip(size, spacing, strict=True))
    return x[None, None, :], y[None, :, None], z[:, None, None]


def _written_hu(hu: np.ndarray) -> np.ndarray:
    """The HU a reader gets back from :func:`_write_raw` (whole HU, clipped to the int16 raw range)."""
    return (np.clip(np.rint(hu) + HU_OFFSET, 0, 32767) - HU_OFFSET).astype(np.float32)


def ncc_under_motion(t00: np.ndarray, t50: np.ndarray, mask_t00: np.ndarray, t50_positions_vox: np.ndarray) -> float:
    """NCC of T00 over its lung voxels ``mask_t00`` (z, y, x) with T50 sampled (trilinear) at those voxels'
    true T50 positions (M, 3) 0-based voxel (x, y, z), in ``coords.mask_points`` order."""
    from scipy import ndimage

    a = t00[mask_t00].astype(np.float64)
    b = ndimage.map_coordinates(t50.astype(np.float64), t50_positions_vox[:, ::-1].T, order=1, mode="nearest")
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def write_case(
    out_dir: str | Path,
    case: int,
    seed: int = 0,
    scale: float = 1.0,
    with_mask: bool = True,
    noise_hu: float = NOISE_HU,
) -> dict:
    """Write phantom ``case`` into ``out_dir`` (DIR-Lab layout + truth); return its summary record.

    ``with_mask`` also writes the true T00 lung mask as the user-made ``Masks/case{N}_T00_mask.mhd``.
    """
    check_options(scale, noise_hu)
    out = Path(out_dir)
    size_xyz, spacing_xyz = geometry(case, scale)
    size, spacing = np.asarray(size_xyz), np.asarray(spacing_xyz)
    shape = coords.size_xyz_to_shape_zyx(size_xyz)
    anat, motion, rng = _case_params(case, seed)
    trees = grow_trees(anat, rng)
    segments, bifurcations, bends = trees
    cap = cal.MAX_DISPLACEMENT_MM[case]
    target = (cal.TARGET_IDENTITY_TRE_MM[case], cal.TARGET_IDENTITY_STD_MM[case])
    points, n_on_bifurcations, motion = cal.landmarks_and_motion(
        anat, trees, motion, size, spacing, np.random.default_rng([seed, case, 100]), cap, target
    )

    exact = {p: coords.mm_to_voxel(motion.forward(points, p, lung=True), spacing) for p in layout.PHASES}
    files = {p: np.rint(coords.to_dirlab_index(v)).astype(np.int64) for p, v in exact.items()}
    for p, v in files.items():
        if ((v < 1) | (v > size)).any():
            raise RuntimeError(f"phantom case {case}: a {p} landmark left the volume (bug)")
    sampled = np.sort(np.random.default_rng([seed, case, 200]).choice(N_LANDMARKS, N_SAMPLED4D, replace=False))

    raster = rasterise_anatomy(anat, segments, spacing, np.random.default_rng([seed, case, 300]))
    case_dir = out / case_folder_name(case)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    phases: dict[str, dict] = {}
    written: dict[str, np.ndarray] = {}
    for k, phase in enumerate(layout.PHASES):
        tau = phase_time(phase)
        image = render_phase(
            raster, motion, tau, shape, spacing, np.random.default_rng([seed, case, 400 + k]), noise_hu
        )
        _write_raw(case_dir / "Images" / image_file_name(case, phase), image)
        hu = _written_hu(image)
        mask = lung_mask(motion, tau, shape, spacing)
        phases[phase] = {
            "lung_volume_ml": float(mask.sum()) * voxel_ml,
            "mean_lung_hu": float(hu[mask].astype(np.float64).mean()),
            # HU + 1000 is density in mg/ml (water 1000, air 0): grams = sum / 1e6 * voxel ml * 1000.
            "lung_mass_g": float((hu[mask].astype(np.float64) + 1000.0).sum()) * voxel_ml / 1000.0,
        }
        if phase in ("T00", "T50"):
            written[phase] = hu
    del raster
    lung = lung_mask(motion, 0.0, shape, spacing)
    for phase in ("T00", "T50"):
        write_text(case_dir / landmark_file_path(case, phase), _landmark_text(files[phase], LANDMARK_STYLE[case]))
    for phase in layout.PHASES:
        text = _landmark_text(files[phase][sampled], "plain")
        write_text(case_dir / sampled4d_file_path(case, phase), text)
    if with_mask:
        _write_mask(case_dir / mask_file_path(case), lung, spacing_xyz)

    still = cal.still_points(anat, spacing, size)
    still_max = max(
        float(np.linalg.norm(motion.forward(still, p, lung=False) - still, axis=1).max()) for p in layout.PHASES[1:]
    )
    tre_files = cal.identity_tre(files["T00"], files["T50"], spacing_xyz)
    tre_exact = cal.identity_tre(
        coords.to_dirlab_index(exact["T00"]), coords.to_dirlab_index(exact["T50"]), spacing_xyz
    )
    lung_points = coords.mask_points(lung)
    t50_points = coords.mm_to_voxel(
        motion.forward(coords.voxel_to_mm(lung_points, spacing), 1.0, lung=True, tol=1e-6), spacing
    )
    air = air_region(anat, size_xyz, spacing_xyz)
    tissue = still_tissue_region(anat, size_xyz, spacing_xyz)
    mass = {p: phases[p]["lung_mass_g"] / phases["T00"]["lung_mass_g"] for p in layout.PHASES[1:]}
    realism = {
        "case": case,
        "inplane_mm": float(spacing[0]),
        "slice_mm": float(spacing[2]),
        "lung_volume_T00_ml": phases["T00"]["lung_volume_ml"],
        "lung_volume_ratio": phases["T50"]["lung_volume_ml"] / phases["T00"]["lung_volume_ml"],
        "mean_lung_hu_T00": phases["T00"]["mean_lung_hu"],
        "mean_lung_hu_T50": phases["T50"]["mean_lung_hu"],
        "lung_mass_ratio": mass["T50"],
        "lung_mass_ratio_worst": max(mass.values(), key=lambda v: abs(v - 1.0)),
        "noise_air_hu": float(written["T00"][air].std()),
        "noise_tissue_hu": float((written["T50"][tissue] - written["T00"][tissue]).std() / np.sqrt(2.0)),
        "ncc_true_motion": ncc_under_motion(written["T00"], written["T50"], lung, t50_points),
        "identity_tre_mm": tre_files[0],
        "identity_std_mm": tre_files[1],
    }
    summary = {
        "case": case,
        "seed": seed,
        "scale": scale,
        "noise_hu": noise_hu,
        "size_xyz": list(size_xyz),
        "spacing_xyz": list(spacing_xyz),
        "motion": motion.to_dict(),
        "breathing": BREATHING,
        "phase_time": {p: phase_time(p) for p in layout.PHASES},
        "target_identity_tre_mm": cal.TARGET_IDENTITY_TRE_MM[case],
        "target_identity_std_mm": cal.TARGET_IDENTITY_STD_MM[case],
        "identity_tre_files_mm": list(tre_files),
        "identity_tre_exact_mm": list(tre_exact),
        "max_displacement_cap_mm": cap,
        "spine_max_displacement_mm": still_max,
        **cal.motion_statistics(exact, files, spacing_xyz),
        "lung_voxels": int(lung.sum()),
        "phases": phases,
        "realism": realism,
        "landmarks_on_bifurcations": n_on_bifurcations,
        "n_bifurcations": len(bifurcations),
        "n_bends": len(bends),
        "n_vessel_segments": len(segments),
    }
    truth = out / TRUTH_DIR
    with atomic_path(truth / f"case{case}.npz") as tmp:
        np.savez_compressed(
            tmp,
            size_xyz=size,
            spacing_xyz=spacing,
            mask_T00=lung.astype(np.uint8),
            sampled4d_index=sampled,
            summary=json.dumps(summary),
            **{f"landmarks_{p}": v for p, v in exact.items()},
        )
    write_json(truth / f"case{case}.json", summary)
    return summary


def read_summary(dataset_dir: str | Path) -> pd.DataFrame:
    """The realism table of a written phantom (``truth/summary.csv``), one row per case."""
    return pd.read_csv(Path(dataset_dir) / TRUTH_DIR / SUMMARY_FILE)


def realism_text(table: pd.DataFrame) -> str:
    """The realism table as a Markdown table (what ``rnr phantom`` prints and rnr/DATA.md shows)."""
    head = (
        "| case | voxel (mm) | lung vol. T00 (l) | vol. T50/T00 | lung HU T00 | lung HU T50 | mass T50/T00 "
        "| worst mass phase/T00 | noise air / tissue (HU) | NCC T00-T50 true motion | identity TRE (mm) |"
    )
    rows = [head, "|" + "---|" * 11]
    for r in table.itertuples(index=False):
        rows.append(
            f"| {r.case} | {r.inplane_mm:.2f} x {r.inplane_mm:.2f} x {r.slice_mm:.2f} "
            f"| {r.lung_volume_T00_ml / 1000:.2f} | {r.lung_volume_ratio:.3f} | {r.mean_lung_hu_T00:.0f} "
            f"| {r.mean_lung_hu_T50:.0f} | {r.lung_mass_ratio:.3f} | {r.lung_mass_ratio_worst:.3f} "
            f"| {r.noise_air_hu:.1f} / {r.noise_tissue_hu:.1f} | {r.ncc_true_motion:.3f} "
            f"| {r.identity_tre_mm:.2f} +- {r.identity_std_mm:.2f} |"
        )
    return "\n".join(rows) + "\n"


_README = """Synthetic 4DCT phantom written by `rnr phantom` (rnr.data.phantom), laid out like DIR-Lab.

Case{N}Pack/ (Case8Deploy/) hold raw int16 images (HU + 1024, little-endian, x fastest), the 300 landmarks
of T00/T50 (1-based voxel indices, CRLF) and Sampled4D files, named as in the real DIR-Lab release.
geometry.json gives each case's size and spacing (real DIR-Lab data uses the table in rnr/data/dirlab_reader.py).
Masks/case{N}_T00_mask.mhd is the true T00 lung mask, placed where a user's own mask would go.
truth/case{N}.npz holds the exact landmark positions (0-based voxels) of every phase, the true T00 lung
mask and the motion parameters; truth/case{N}.json the same scalars with each phase's lung volume, mean lung
HU and lung mass; truth/summary.csv the realism table (one row per case). Not patient data.
"""


def write_dataset(
    out_dir: str | Path,
    cases: Iterable[int] = range(1, 11),
    seed: int = 0,
    scale: float = 1.0,
    *,
    with_masks: bool = True,
    noise_hu: float = NOISE_HU,
    jobs: int = 1,
) -> Path:
    """Write the phantom cases ``cases`` into ``out_dir`` in the DIR-Lab layout; return ``out_dir``.

    ``geometry.json`` and ``truth/summary.csv`` list the written cases (merged with entries already there for
    other cases). ``with_masks`` writes each case's true T00 lung mask as a user-provided ``Masks/`` mask.
    ``jobs`` > 1 writes that many cases at once in worker processes (each case is independent and seeded
    on its own, so the output does not depend on ``jobs``).
    """
    check_options(scale, noise_hu)
    cases = [int(c) for c in cases]
    bad = [c for c in cases if c not in FIELD_OF_VIEW_MM]
    if bad:
        raise ValueError(f"--cases: phantom cases are 1..10, got {bad}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    entries: dict[str, dict] = {}
    geometry_path = out / GEOMETRY_FILE
    if geometry_path.is_file():
        try:
            entries = dict(json.loads(geometry_path.read_text()).get("cases", {}))
        except (ValueError, AttributeError):
            entries = {}
    summary_path = out / TRUTH_DIR / SUMMARY_FILE
    rows = {}
    if summary_path.is_file():
        old = pd.read_csv(summary_path)
        if list(old.columns) == list(REALISM_COLUMNS):
            rows = {int(r["case"]): r for r in old.to_dict("records")}
    options = {"seed": seed, "scale": scale, "with_mask": with_masks, "noise_hu": noise_hu}
    if jobs > 1 and len(cases) > 1:
        with ProcessPoolExecutor(min(jobs, len(cases))) as pool:
            summaries = list(pool.map(partial(write_case, out, **options), cases))
    else:
        summaries = [write_case(out, case, **options) for case in cases]
    for case, summary in zip(cases, summaries, strict=True):
        entries[str(case)] = {
            "size_xyz": summary["size_xyz"],
            "spacing_xyz": summary["spacing_xyz"],
            "seed": seed,
            "scale": scale,
        }
        rows[case] = summary["realism"]
    write_json(
        geometry_path,
        {
            "description": "rnr phantom: per-case grid (size in voxels x, y, z; spacing in mm); "
            "overrides the DIR-Lab geometry table for these cases",
            "cases": dict(sorted(entries.items(), key=lambda kv: int(kv[0]))),
        },
    )
    write_csv(summary_path, pd.DataFrame([rows[c] for c in sorted(rows)], columns=list(REALISM_COLUMNS)))
    write_text(out / "README_phantom.txt", _README)
    return out
