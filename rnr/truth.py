"""Evaluation against a dataset's exact motion, where the dataset carries it (the built-in phantom).

DIR-Lab's landmarks are whole voxels picked by experts, so on real data the landmark files are the only
reference. The phantom knows its motion exactly (``truth.npz`` in a converted case, written by rnr/phantom/), which
allows what the files cannot: scoring a map against the unrounded landmark positions, and against the true
motion of every lung voxel. On the phantom's voxels of about 3 mm, rounding the landmarks alone leaves the true
motion with a file-landmark TRE of more than a millimetre, the same order as the differences between good
methods; against the exact truth it scores 0.

:func:`exact_metrics` returns, for a map phi (T00 -> T50):

* ``tre``: TRE of phi on the exact T00 landmark positions against the exact T50 positions (continuous;
  mean, std ddof = 1, per axis), and ``per_landmark``: each landmark's exact TRE and signed difference in mm
  (``landmark``, ``tre_mm``, ``dx_mm``, ``dy_mm``, ``dz_mm``; the rows of ``tre_exact_landmarks.csv``);
* ``dense``: the error |phi(x) - phi_true(x)| in mm over every T00 lung-mask voxel x: RMS, mean, 95th
  percentile (numpy linear), maximum;
* ``steps``: for maps with a step per phase interval, the exact TRE of every phi_n on the exact positions of
  the 300 landmarks at the phases the run's pairing pairs (rnr/phases.py).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import coords, layout, metrics
from .case import ConvertedCase
from .phantom.motion import Motion
from .transform import Transform

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


def exact_metrics(
    transform: Transform, truth: Any, mask_zyx: np.ndarray, pairing: str, mapped_mask_vox: np.ndarray | None = None
) -> dict[str, Any]:
    """The exact-truth record of one map (module docstring). ``mapped_mask_vox``: phi at the mask voxels
    (coords.mask_points order, (M, 3) voxels) when already computed."""
    spacing = np.asarray(transform.spacing_xyz)
    t00, t50 = truth.landmarks["T00"], truth.landmarks["T50"]
    landmark = metrics.landmark_tre(transform, t00, t50, transform.spacing_xyz).continuous
    points = coords.mask_points(mask_zyx)
    mapped = transform.apply_voxels(points) if mapped_mask_vox is None else mapped_mask_vox
    error = np.linalg.norm((mapped - truth.positions(points, "T50", lung=True)) * spacing, axis=1)
    steps = []
    for pair in metrics.landmark_pairs_of(transform, pairing):
        result = metrics.landmark_tre(
            transform, truth.landmarks[pair.source], truth.landmarks[pair.target], transform.spacing_xyz, pair.step
        ).continuous
        steps.append(
            {"step": pair.interval, "source_phase": pair.source, "target_phase": pair.target, **result.summary()}
        )
    return {
        "tre": {**landmark.summary(), "per_landmark": per_landmark_records(landmark)},
        "dense": {
            "n_points": int(len(error)),
            "rms_mm": float(np.sqrt(np.mean(error**2))),
            "mean_mm": float(np.mean(error)),
            "p95_mm": float(np.percentile(error, 95)),
            "max_mm": float(np.max(error)),
        },
        "steps": steps,
    }


def per_landmark_records(result: metrics.TREStats) -> list[dict[str, float]]:
    """One record per landmark (0-based row of the landmark files): exact TRE and signed difference in mm."""
    return [
        {
            "landmark": i,
            "tre_mm": float(result.per_landmark_mm[i]),
            "dx_mm": float(result.diff_mm[i, 0]),
            "dy_mm": float(result.diff_mm[i, 1]),
            "dz_mm": float(result.diff_mm[i, 2]),
        }
        for i in range(result.n)
    ]


class TruthTransform(Transform):
    """The true motion as a Transform (trajectory semantics): phi_n carries T00 lung points to their phase
    T(10n) positions, phi = phi_5 to T50. Used to check that evaluation scores the truth as 0.

    The Jacobian is a central finite difference with a step of 0.05 voxel (the truth is numpy, not autograd).
    """

    kind = "phantom-truth"
    n_steps = len(layout.PHASES) - 1

    def __init__(self, size_xyz: Sequence[int], spacing_xyz: Sequence[float], truth: Any = None):
        super().__init__(size_xyz, spacing_xyz)
        self.truth = truth

    def map_normalised(self, u: torch.Tensor, step: int | None = None) -> torch.Tensor:
        phase = layout.PHASES[self.n_steps if step is None else step]
        vox = coords.normalised_to_voxel(u.detach().to("cpu", torch.float64).numpy(), self.size_xyz)
        out = self.truth.positions(vox, phase, lung=True)
        return torch.as_tensor(coords.voxel_to_normalised(out, self.size_xyz), dtype=u.dtype, device=u.device)

    def jacobian_normalised(self, u: torch.Tensor, step: int | None = None) -> torch.Tensor:
        h = torch.tensor([0.1 / (n - 1) for n in self.size_xyz], dtype=u.dtype, device=u.device)
        cols = []
        for j in range(3):
            plus, minus = u.clone(), u.clone()
            plus[:, j] += h[j]
            minus[:, j] -= h[j]
            cols.append((self.map_normalised(plus, step) - self.map_normalised(minus, step)) / (2 * h[j]))
        return torch.stack(cols, dim=2)
