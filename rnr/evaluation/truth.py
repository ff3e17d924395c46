"""Scoring a map against a dataset's exact motion, where the dataset carries it (the built-in phantom; the truth
is read by rnr/data/truth.py).

DIR-Lab's landmarks are whole voxels picked by experts, so on real data the landmark files are the only
reference. The phantom knows its motion exactly (``truth.npz`` in a converted case, written by rnr/data/phantom/), which
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
  the 300 landmarks at the phases the run's pairing pairs (rnr/fitting/phases.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .. import coords, layout
from ..fitting.transform import Transform
from . import metrics


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
