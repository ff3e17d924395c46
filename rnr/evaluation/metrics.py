"""Target registration error (TRE) and folding as pure functions returning named values.

Conventions (the same words appear in every ``metrics.json`` and table footer):

* Landmarks are 0-based voxel indices (x, y, z) (coords.py); millimetres are ``index * spacing`` per axis.
* TRE of one landmark is ``|| (predicted - target) * spacing ||`` in mm. Per-axis TRE is the absolute
  difference along one axis in mm.
* Means and standard deviations are over the landmarks of one case; std uses ``ddof = 1`` (sample std).
* *Continuous* TRE uses the predicted position as is; *snapped* TRE first rounds the prediction to the
  nearest voxel (``numpy.round``: halves to even), the reference code's and pTVreg's convention.
* *Legacy* TRE reproduces the public reference code's landmark handling (rnr/methods/README.md, "Coordinates").
* Folding counts points where ``det J(phi) <= 0``.

Everything that involves a map goes through :class:`rnr.fitting.transform.Transform` only, so RNR, IDIR, demons and
the identity are measured by one code path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .. import coords
from ..fitting.phases import LandmarkPair, landmark_pairs
from ..fitting.transform import DEFAULT_CHUNK, Transform

DDOF = 1
CONVENTIONS = {
    "indices": "0-based voxel indices (x, y, z); DIR-Lab's 1-based file indices minus 1",
    "mm": "mm = index * spacing per axis (x, y, z); TRE = ||(predicted - target) * spacing||",
    "per_axis": "per-axis TRE = |predicted - target| along that axis in mm",
    "std": "std over the landmarks of one case with ddof = 1 (sample std); det J std also ddof = 1",
    "continuous": "continuous TRE: the mapped landmark position is used as is",
    "snapped": "snapped TRE: the mapped position is rounded to the nearest voxel (numpy.round) first",
    "legacy": "legacy TRE: reference-code handling - 1-based indices used as is, normalised with n/2, "
    "mapped, de-normalised with n/2, rounded to the nearest voxel, compared with 1-based T50 "
    "landmarks",
    "folding": "fraction of T00-mask voxels where det of the Jacobian of phi is <= 0",
}


# -- TRE ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TREStats:
    """TRE of M landmarks.

    Attributes:
        diff_mm: (M, 3) signed difference predicted - target in mm, columns (x, y, z).
        per_landmark_mm: (M,) Euclidean TRE in mm.
        mean_mm, std_mm: mean and std (ddof = 1; NaN when M < 2) of ``per_landmark_mm``.
        axis_mean_mm, axis_std_mm: (3,) mean and std (ddof = 1) of ``|diff_mm|`` per axis (x, y, z).
    """

    diff_mm: np.ndarray
    per_landmark_mm: np.ndarray
    mean_mm: float
    std_mm: float
    axis_mean_mm: tuple[float, float, float]
    axis_std_mm: tuple[float, float, float]

    @property
    def n(self) -> int:
        return int(len(self.per_landmark_mm))

    def summary(self, prefix: str = "") -> dict[str, float]:
        """Flat dict ``{prefix}mean_mm, {prefix}std_mm, {prefix}x_mm, .., {prefix}x_std_mm, ..``."""
        out = {f"{prefix}mean_mm": self.mean_mm, f"{prefix}std_mm": self.std_mm}
        for axis, mean, std in zip("xyz", self.axis_mean_mm, self.axis_std_mm, strict=True):
            out[f"{prefix}{axis}_mm"] = mean
            out[f"{prefix}{axis}_std_mm"] = std
        return out


def _mean_std(values: np.ndarray) -> tuple[float, float]:
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return float("nan"), float("nan")
    std = float(np.std(values, ddof=DDOF)) if len(values) > DDOF else float("nan")
    return float(np.mean(values)), std


def tre(predicted_vox: np.ndarray, target_vox: np.ndarray, spacing_xyz: Sequence[float]) -> TREStats:
    """TRE between predicted and target 0-based voxel positions (M, 3) (x, y, z), spacing in mm."""
    predicted = np.asarray(predicted_vox, dtype=np.float64)
    target = np.asarray(target_vox, dtype=np.float64)
    if predicted.shape != target.shape or predicted.ndim != 2 or predicted.shape[1] != 3:
        raise ValueError(f"predicted and target must both be (M, 3); got {predicted.shape} and {target.shape}")
    diff = coords.voxel_to_mm(predicted - target, spacing_xyz)
    dist = np.linalg.norm(diff, axis=1)
    mean, std = _mean_std(dist)
    axis = [_mean_std(np.abs(diff[:, k])) for k in range(3)]
    return TREStats(
        diff_mm=diff,
        per_landmark_mm=dist,
        mean_mm=mean,
        std_mm=std,
        axis_mean_mm=tuple(a[0] for a in axis),
        axis_std_mm=tuple(a[1] for a in axis),
    )  # type: ignore


def snap(points_vox: np.ndarray) -> np.ndarray:
    """Round voxel positions to the nearest voxel centre (numpy.round: exact halves go to the even index)."""
    return np.round(np.asarray(points_vox, dtype=np.float64))


@dataclass(frozen=True)
class LandmarkTRE:
    """Continuous and snapped TRE of one set of mapped landmarks.

    Attributes:
        predicted_vox: (M, 3) mapped source landmarks, 0-based voxel (x, y, z), before snapping.
        continuous, snapped: the two TRE conventions.
    """

    predicted_vox: np.ndarray
    continuous: TREStats
    snapped: TREStats


def landmark_tre(
    transform: Transform,
    source_vox: np.ndarray,
    target_vox: np.ndarray,
    spacing_xyz: Sequence[float] | None = None,
    step: int | None = None,
) -> LandmarkTRE:
    """Map ``source_vox`` (M, 3) through phi_step and compare with ``target_vox`` (M, 3).

    Spacing defaults to the transform's. ``step=None`` is the full map phi_N.
    """
    spacing = transform.spacing_xyz if spacing_xyz is None else spacing_xyz
    predicted = transform.apply_voxels(np.asarray(source_vox, dtype=np.float64), step=step)
    return LandmarkTRE(
        predicted_vox=predicted,
        continuous=tre(predicted, target_vox, spacing),
        snapped=tre(snap(predicted), target_vox, spacing),
    )


def legacy_tre(
    transform: Transform,
    source_vox: np.ndarray,
    target_vox: np.ndarray,
    spacing_xyz: Sequence[float] | None = None,
) -> TREStats:
    """TRE with the public reference code's landmark handling (for comparison with its numbers only).

    Starting from 0-based landmarks (M, 3) as the case reader gives them, the DIR-Lab 1-based indices are
    restored and used as is, normalised with ``n/2`` (coords.legacy_to_normalised), mapped by phi_N,
    de-normalised with ``n/2`` (coords.legacy_from_normalised), rounded to the nearest voxel and compared
    with the 1-based T50 landmarks. This evaluates the map up to about one voxel away from the right point
    and scales displacements by ``n/(n-1)`` (rnr/methods/README.md, "Coordinates").
    """
    spacing = transform.spacing_xyz if spacing_xyz is None else spacing_xyz
    source_1 = coords.to_dirlab_index(np.asarray(source_vox, dtype=np.float64))
    target_1 = coords.to_dirlab_index(np.asarray(target_vox, dtype=np.float64))
    u = torch.as_tensor(
        coords.legacy_to_normalised(source_1, transform.size_xyz),
        dtype=torch.float32,
        device=transform.device,
    )
    with torch.no_grad():
        mapped = transform.map_normalised(u).to("cpu", torch.float64).numpy()
    predicted_1 = coords.legacy_from_normalised(mapped, transform.size_xyz)
    return tre(snap(predicted_1), target_1, spacing)


# -- intermediate phases --------------------------------------------------------------------------------
def landmark_pairs_of(transform: Transform, pairing: str) -> list[LandmarkPair]:
    """The Sampled4D pairs that score each phase interval of ``transform`` (rnr/fitting/phases.py); [] when the map
    has no step per interval. The identity is the identity at every step."""
    return landmark_pairs(pairing, transform.n_steps, stepwise_identity=transform.kind == "identity")


def intermediate_tre(
    transform: Transform,
    sampled: Mapping[str, np.ndarray],
    pairing: str,
    spacing_xyz: Sequence[float] | None = None,
) -> list[dict[str, Any]]:
    """TRE of every phi_n on the 75-point Sampled4D landmarks ({phase: (75, 3) 0-based voxel}).

    Returns one record per interval n = 1..5 (rnr/fitting/phases.py for the pairing): step (= n), source_phase,
    target_phase, n_landmarks, the continuous summary (mean_mm, std_mm, x_mm, ...) and ``snapped_mean_mm``,
    ``snapped_std_mm``. Empty when the transform has no intermediate steps or a needed phase is missing.
    """
    pairs = landmark_pairs_of(transform, pairing)
    if not pairs:
        return []
    if any(sampled.get(p) is None for pair in pairs for p in (pair.source, pair.target)):
        return []
    records = []
    for pair in pairs:
        result = landmark_tre(transform, sampled[pair.source], sampled[pair.target], spacing_xyz, step=pair.step)
        records.append(
            {
                "step": pair.interval,
                "source_phase": pair.source,
                "target_phase": pair.target,
                "n_landmarks": result.continuous.n,
                **result.continuous.summary(),
                "snapped_mean_mm": result.snapped.mean_mm,
                "snapped_std_mm": result.snapped.std_mm,
            }
        )
    return records


# -- folding --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FoldingStats:
    """Statistics of det J over N points: count and fraction with det <= 0, min, max, mean, std (ddof = 1),
    and SDlogJ (:func:`sdlogj`)."""

    n_points: int
    count: int
    fraction: float
    min_det: float
    max_det: float
    mean_det: float
    std_det: float
    sdlogj: float

    def to_dict(self) -> dict[str, float | int]:
        return dict(self.__dict__)


def det_stats(dets: np.ndarray) -> FoldingStats:
    """Folding statistics of an array of Jacobian determinants (any shape)."""
    dets = np.asarray(dets, dtype=np.float64).ravel()
    if len(dets) == 0:
        raise ValueError("no points to compute folding on (empty mask?)")
    count = int(np.count_nonzero(dets <= 0))
    mean, std = _mean_std(dets)
    return FoldingStats(
        n_points=int(len(dets)),
        count=count,
        fraction=count / len(dets),
        min_det=float(dets.min()),
        max_det=float(dets.max()),
        mean_det=mean,
        std_det=std,
        sdlogj=sdlogj(dets),
    )


def folding_steps(transform: Transform, points_vox: np.ndarray, chunk: int = DEFAULT_CHUNK) -> list[FoldingStats]:
    """Folding of every phi_n, n = 1..n_steps, from ONE call of :meth:`Transform.map_steps_and_detj` at the
    0-based voxel points (M, 3) (for RNR one chained pass through the blocks; the last entry is the full map).
    Maps without intermediate steps give a list of one."""
    _, detj = transform.map_steps_and_detj(points_vox, chunk=chunk)
    return [det_stats(d) for d in detj]


def step_records(stats: Sequence[FoldingStats]) -> list[dict[str, Any]]:
    """``folding_steps`` output as the per-step records of metrics.json: ``{"step": n, **FoldingStats}`` for
    n = 1..S; empty for a map without intermediate steps (S = 1)."""
    if len(stats) <= 1:
        return []
    return [{"step": n, **s.to_dict()} for n, s in enumerate(stats, start=1)]


def folding(
    transform: Transform, points_vox: np.ndarray, step: int | None = None, chunk: int = DEFAULT_CHUNK
) -> FoldingStats:
    """det J of phi_step at every 0-based voxel point (M, 3) (e.g. coords.mask_points(mask)), in chunks.
    For every step at once use :func:`folding_steps` (one pass instead of one per step)."""
    return det_stats(transform.jacobian_det_voxels(points_vox, step=step, chunk=chunk))


def folding_per_step(transform: Transform, points_vox: np.ndarray, chunk: int = DEFAULT_CHUNK) -> list[dict[str, Any]]:
    """Folding of every phi_n, n = 1..n_steps, as records ``{"step": n, **FoldingStats}`` (one pass,
    :func:`folding_steps`). Empty for maps without steps (n_steps == 1)."""
    if transform.n_steps <= 1:
        return []
    return step_records(folding_steps(transform, points_vox, chunk))


# -- smoothness -----------------------------------------------------------------------------------------
SDLOGJ_FLOOR = 1e-9


def sdlogj(det_j: np.ndarray, mask: np.ndarray | None = None) -> float:
    """SDlogJ: standard deviation of log det J over the mask voxels (Learn2Reg's smoothness measure).

    ``SDlogJ = std(log(max(det J, 1e-9)))`` over the N values of ``det_j`` (any shape; the det J of the
    mask points, or a volume with a boolean ``mask`` of the same shape), with ``ddof = 1`` like every std in
    this module (N is in the millions, so ddof barely matters). Unitless; 0 for a map whose volume change is
    the same everywhere (any affine map).

    det J <= 0 (folding) has no logarithm: such values are clipped to the floor ``SDLOGJ_FLOOR = 1e-9``
    before the log, so each folded voxel enters as log(1e-9) ~ -20.7. This keeps folding visible (a few
    folded voxels raise SDlogJ sharply) instead of dropping them, which would make a folding map look
    smoother; the folding fraction is reported next to SDlogJ for the count itself. NaN values propagate.
    """
    dets = np.asarray(det_j, dtype=np.float64)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != dets.shape:
            raise ValueError(f"mask shape {mask.shape} differs from det J shape {dets.shape}")
        dets = dets[mask]
    dets = dets.ravel()
    if len(dets) == 0:
        raise ValueError("no points to compute SDlogJ on (empty mask?)")
    if len(dets) <= DDOF:
        return float("nan")
    return float(np.std(np.log(np.maximum(dets, SDLOGJ_FLOOR)), ddof=DDOF))
