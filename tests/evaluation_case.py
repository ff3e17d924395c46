"""A tiny converted case written by hand, for the evaluation tests (metrics, evaluate, tables, figures).

The volume is a few voxels on each side with anisotropic spacing; intensities are an analytic 'chest'
(body, two lungs, a vessel blob) evaluated at coordinates shifted per phase, so phases differ by a known
motion. Landmarks are integer 0-based voxels (as DIR-Lab's) with known displacements. It is written with the
same readers' conventions as ``rnr convert`` (layout.py names, case.json keys read by rnr.data.case).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from rnr import layout
from rnr.io import write_csv, write_image, write_json

SIZE = (16, 12, 8)  # (nx, ny, nz)
SPACING = (1.0, 1.5, 2.5)  # mm, anisotropic like DIR-Lab


def _chest(size_xyz, spacing_xyz, shift_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """HU volume (nz, ny, nx) int16: air -1000, body 40, lungs -850 (with a vessel blob) moved by ``shift_mm``
    toward z = 0 (cranial); and the bool lung mask."""
    nx, ny, nz = size_xyz
    sx, sy, sz = spacing_xyz
    z, y, x = np.meshgrid(np.arange(nz) * sz, np.arange(ny) * sy, np.arange(nx) * sx, indexing="ij")
    cx, cy, cz = (nx - 1) * sx / 2, (ny - 1) * sy / 2, (nz - 1) * sz / 2
    vol = np.full(z.shape, -1000.0)
    lungs = np.zeros(z.shape, dtype=bool)
    body = ((x - cx) / (0.48 * nx * sx)) ** 2 + ((y - cy) / (0.48 * ny * sy)) ** 2 < 1
    vol[body] = 40.0
    zz = z + shift_mm
    for side in (-1, 1):
        lung = (
            ((x - cx - side * 0.22 * nx * sx) / (0.17 * nx * sx)) ** 2
            + ((y - cy) / (0.3 * ny * sy)) ** 2
            + ((zz - cz) / (0.4 * nz * sz)) ** 2
        ) < 1
        vol[lung] = -850.0
        lungs |= lung
    blob = np.exp(-(((x - cx - 0.22 * nx * sx) ** 2 + (y - cy) ** 2 + (zz - cz) ** 2) / (2 * 2.0**2)))
    return (vol + 700.0 * blob * lungs).astype(np.int16), lungs


def _image(arr: np.ndarray, spacing_xyz) -> sitk.Image:
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(tuple(float(s) for s in spacing_xyz))
    return img


def make_case(
    folder: Path,
    case: int = 1,
    n_landmarks: int = 20,
    intermediate: bool = False,
    seed: int = 0,
    size_xyz=SIZE,
    spacing_xyz=SPACING,
) -> Path:
    """Write a converted case into ``folder``; return it.

    T50 landmarks = T00 landmarks + an integer displacement in [-2, 2] voxels per axis (clipped to the grid).
    With ``intermediate``, T10..T40 volumes and Sampled4D landmarks (10 points; phase T(10k) = T00 + k *
    per-point step, an integer step in [-1, 1] voxels per axis, clipped to the grid) are written too. The
    mask is the T00 lung region.
    """
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    hi = np.array(size_xyz) - 1
    phases = layout.PHASES if intermediate else ("T00", "T50")
    for phase in phases:
        k = int(phase[1:]) // 10
        write_image(folder / layout.image_name(phase), _image(_chest(size_xyz, spacing_xyz, 0.8 * k)[0], spacing_xyz))
    t00 = rng.integers(2, hi - 1, size=(n_landmarks, 3), endpoint=True).astype(float)
    t50 = np.clip(t00 + rng.integers(-2, 2, size=t00.shape, endpoint=True), 0, hi).astype(float)
    write_csv(folder / layout.landmarks_name("T00"), layout.landmark_table(t00, spacing_xyz))
    write_csv(folder / layout.landmarks_name("T50"), layout.landmark_table(t50, spacing_xyz))
    if intermediate:
        base = rng.integers(2, hi - 2, size=(10, 3), endpoint=True).astype(float)
        step = rng.integers(-1, 1, size=base.shape, endpoint=True).astype(float)
        for k, phase in enumerate(layout.PHASES):
            points = np.clip(base + k * step, 0, hi)
            write_csv(folder / layout.sampled4d_name(phase), layout.landmark_table(points, spacing_xyz))
    mask = _chest(size_xyz, spacing_xyz, 0.0)[1].astype(np.uint8)
    write_image(folder / layout.MASK_T00, _image(mask, spacing_xyz))
    write_json(
        folder / layout.CASE_JSON,
        {"case": case, "size_xyz": list(size_xyz), "spacing_xyz": list(spacing_xyz), "phases": list(phases)},
    )
    return folder


# Registered configurations of make_runs: name -> (z scale, z offset in normalised units, wall time s).
AFFINE_CONFIGS = {"affine_small": (0.97, -0.05, 3.0), "affine_large": (0.9, -0.2, 7.0)}


def make_runs(root: Path, cases=(1, 2), figures: bool = False, seeds=None, settings=None) -> Path:
    """A results tree from real ``rnr evaluate`` runs: ``initial`` (--identity) and two affine maps saved as
    checkpoints with a run record. Returns runs/.

    Without ``seeds`` the run folders are ``runs/<configuration>/case<N>/``; with ``seeds`` (a list) every
    affine configuration gets ``runs/<configuration>/case<N>/seed<S>/`` per seed (its z offset moved by
    0.01 * seed, so seeds differ) and ``initial`` ``runs/initial/case<N>/seed0/``. ``settings``: configuration ->
    settings recorded in the run records (default ``{"method": "affine", "iterations": 1}``).
    """
    from rnr import cli
    from rnr.data.case import load_case
    from rnr.fitting.transform import AffineTransform

    root = Path(root)
    for n in cases:
        case_dir = make_case(root / "data" / f"case{n}", case=n, seed=n)
        case = load_case(case_dir)
        initial = root / "runs" / "initial" / f"case{n}"
        jobs = [(initial / "seed0" if seeds else initial, ["--identity"])]
        for name, (scale, offset, wall) in AFFINE_CONFIGS.items():
            for seed in seeds or [None]:
                run_dir = root / "runs" / name / f"case{n}"
                run_dir = run_dir / f"seed{seed}" if seed is not None else run_dir
                z = offset + 0.01 * (seed or 0)
                AffineTransform(
                    case.size_xyz, case.spacing_xyz, np.diag([1.0, 1.0, scale]), np.array([0.0, 0.0, z])
                ).save(run_dir / layout.CHECKPOINT, configuration=name)
                own = dict((settings or {}).get(name, {"method": "affine", "iterations": 1}))
                if seed is not None:
                    own["seed"] = seed
                write_json(
                    run_dir / layout.RUN_JSON,
                    {
                        "case": n,
                        "configuration": name,
                        "method": "affine",
                        "device": "cpu",
                        "wall_s": wall + n,
                        "iterations": 1,
                        "settings": own,
                        "versions": {"torch": "test"},
                    },
                )
                jobs.append((run_dir, []))
        for run_dir, extra in jobs:
            argv = ["evaluate", "--case-dir", str(case_dir), "--run-dir", str(run_dir), *extra]
            if cli.main(argv + ([] if figures else ["--no-figures"])) != 0:
                raise RuntimeError(f"rnr {' '.join(argv)} failed")
    return root / "runs"
