"""A dataset's exact motion, where the dataset carries it (the built-in phantom): the truth files and reading
them back.

DIR-Lab's landmarks are whole voxels picked by experts, so on real data the landmark files are the only
reference. The phantom knows its motion exactly (``truth.npz`` in a converted case, written by
rnr/data/phantom/): :class:`PhantomTruth` holds the unrounded landmark positions of every phase, the true lung
mask and the analytic motion. Scoring a map against it is evaluation's job (rnr/evaluation/truth.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import coords, layout
from .case import ConvertedCase
from .phantom.motion import Motion

#: Folder of a written phantom dataset that holds ``case{N}.npz`` (the truth) and ``summary.csv``.
TRUTH_DIR = "truth"


@dataclass(frozen=True)
class PhantomTruth:
    """Exact truth of one phantom case (from ``truth/case{N}.npz``; see :func:`load_truth_file`).

    ``landmarks[phase]``: (300, 3) float64 0-based voxel (x, y, z) of every phase T00..T50 (unrounded);
    ``mask_T00``: bool (z, y, x) true lung mask; ``sampled4d_index``: (75,) rows of the 300 used for
    Sampled4D; ``motion``: the analytic :class:`Motion` (both compartments, lags); ``summary``: the JSON
    record. :meth:`positions` maps any T00 point to any phase.
    """

    case: int
    size_xyz: tuple[int, int, int]
    spacing_xyz: tuple[float, float, float]
    landmarks: dict[str, np.ndarray]
    mask_T00: np.ndarray
    sampled4d_index: np.ndarray
    motion: Motion
    summary: dict

    def in_lung(self, points_vox: np.ndarray) -> np.ndarray:
        """(M,) bool: whether T00 points (M, 3) 0-based voxel (x, y, z) lie in the T00 lungs (the analytic
        shape the mask was rendered from: equal to ``mask_T00`` at voxel centres)."""
        p = coords.voxel_to_mm(np.asarray(points_vox, dtype=np.float64).reshape(-1, 3), self.spacing_xyz)
        return self.motion.anatomy().lung(p[:, 0], p[:, 1], p[:, 2])

    def positions(
        self, points_vox: np.ndarray, phase: str | float, lung: np.ndarray | bool | None = None
    ) -> np.ndarray:
        """Exact positions (M, 3) 0-based voxel (x, y, z) at ``phase`` ("T00".."T50", or a breathing time in
        [0, 1]) of T00 points (M, 3) 0-based voxel (x, y, z), float.

        ``lung``: the points' compartment (True: lung field, False: body field, (M,) bool per point;
        default: the T00 lungs, :meth:`in_lung`). Mask voxels and landmarks are lung points. About 5 s of one
        core per million points and phase.
        """
        p = coords.voxel_to_mm(np.asarray(points_vox, dtype=np.float64).reshape(-1, 3), self.spacing_xyz)
        return coords.mm_to_voxel(self.motion.forward(p, phase, lung=lung), self.spacing_xyz)

    def displacement_mm(
        self, points_vox: np.ndarray, phase: str | float, lung: np.ndarray | bool | None = None
    ) -> np.ndarray:
        """True displacement (M, 3) mm (x, y, z) from T00 to ``phase`` of T00 points (M, 3) 0-based voxel."""
        p = np.asarray(points_vox, dtype=np.float64).reshape(-1, 3)
        return (self.positions(p, phase, lung) - p) * np.asarray(self.spacing_xyz)


def truth_file(dataset_dir: str | Path, case: int) -> Path:
    """``DATASET/truth/case{N}.npz``: the one file that carries a case's truth (copy it along with a case)."""
    return Path(dataset_dir) / TRUTH_DIR / f"case{case}.npz"


def load_truth_file(path: str | Path) -> PhantomTruth:
    """Read a truth file written by the phantom (``truth/case{N}.npz``, self-contained)."""
    with np.load(path) as data:
        summary = json.loads(str(data["summary"]))
        return PhantomTruth(
            case=int(summary["case"]),
            size_xyz=tuple(int(v) for v in data["size_xyz"]),  # type: ignore[arg-type]
            spacing_xyz=tuple(float(v) for v in data["spacing_xyz"]),  # type: ignore[arg-type]
            landmarks={p: data[f"landmarks_{p}"].copy() for p in layout.PHASES},
            mask_T00=data["mask_T00"].astype(bool),
            sampled4d_index=data["sampled4d_index"].copy(),
            motion=Motion.from_dict(summary["motion"]),
            summary=summary,
        )


def load_truth(dataset_dir: str | Path, case: int) -> PhantomTruth:
    """The truth of ``case`` in a written phantom dataset (``DATASET/truth/case{N}.npz``)."""
    return load_truth_file(truth_file(dataset_dir, case))


def true_positions_vox(truth_path: str | Path, phase: str | float, points_vox: np.ndarray) -> np.ndarray:
    """Convenience: :meth:`PhantomTruth.positions` of the truth file ``truth_path`` (M, 3) -> (M, 3) voxel."""
    return load_truth_file(truth_path).positions(points_vox, phase)


def load_case_truth(case: ConvertedCase) -> PhantomTruth | None:
    """The case's exact motion (:class:`PhantomTruth`), or None when its dataset carries none."""
    path = case.path / layout.TRUTH
    if not path.is_file():
        return None
    return load_truth_file(path)
