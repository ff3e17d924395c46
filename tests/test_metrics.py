"""TRE and folding (rnr.evaluation.metrics) on hand-computed and analytic cases, through the Transform interface."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnr import coords
from rnr.evaluation import metrics
from rnr.fitting.transform import AffineTransform, IdentityTransform, Transform


class SquareX(Transform):
    """phi(u) = (u_x^2, u_y, u_z): det J = 2 u_x, so every voxel with u_x <= 0 folds (or is degenerate)."""

    kind = "test-square-x"

    def map_normalised(self, u: torch.Tensor, step: int | None = None) -> torch.Tensor:
        return torch.stack([u[:, 0] ** 2, u[:, 1], u[:, 2]], dim=1)


class StepScaleShift(Transform):
    """Five steps: phi_n(u) = (1 + 0.1 n) u + n d, so det J(phi_n) = (1 + 0.1 n)^3 (steps distinguishable)."""

    kind = "test-step-scale-shift"
    n_steps = 5

    def __init__(self, size_xyz, spacing_xyz, shift=(0.0, 0.0, 0.0), scale: float = 0.1):
        super().__init__(size_xyz, spacing_xyz)
        self.shift = torch.as_tensor(shift, dtype=torch.float32)
        self.scale = scale

    def map_normalised(self, u: torch.Tensor, step: int | None = None) -> torch.Tensor:
        n = self.n_steps if step is None else step
        return (1 + self.scale * n) * u + n * self.shift.to(u.device)


# -- TRE of given positions ------------------------------------------------------------------------------
def test_tre_continuous_and_snapped_on_a_hand_made_case():
    predicted = np.array([[1.4, 0.0, 0.0], [0.0, 0.6, 0.0]])
    target = np.zeros((2, 3))
    spacing = (2.0, 1.0, 2.5)
    cont = metrics.tre(predicted, target, spacing)
    # Continuous: 1.4 voxel * 2 mm = 2.8 mm; 0.6 voxel * 1 mm = 0.6 mm.
    np.testing.assert_allclose(cont.per_landmark_mm, [2.8, 0.6])
    assert cont.mean_mm == pytest.approx(1.7)
    assert cont.std_mm == pytest.approx(2.2 / np.sqrt(2))  # ddof = 1: |a - b| / sqrt(2) for two values
    assert cont.axis_mean_mm == pytest.approx((1.4, 0.3, 0.0))
    assert cont.axis_std_mm[0] == pytest.approx(2.8 / np.sqrt(2))
    # Snapped: 1.4 -> 1 voxel = 2 mm; 0.6 -> 1 voxel = 1 mm.
    snapped = metrics.tre(metrics.snap(predicted), target, spacing)
    np.testing.assert_allclose(snapped.per_landmark_mm, [2.0, 1.0])
    assert snapped.mean_mm == pytest.approx(1.5)
    assert snapped.std_mm == pytest.approx(1.0 / np.sqrt(2))
    summary = cont.summary("snapped_")
    assert set(summary) == {
        "snapped_mean_mm",
        "snapped_std_mm",
        "snapped_x_mm",
        "snapped_y_mm",
        "snapped_z_mm",
        "snapped_x_std_mm",
        "snapped_y_std_mm",
        "snapped_z_std_mm",
    }


def test_tre_rejects_mismatched_shapes_and_single_point_std_is_nan():
    with pytest.raises(ValueError, match=r"\(M, 3\)"):
        metrics.tre(np.zeros((3, 3)), np.zeros((2, 3)), (1, 1, 1))
    one = metrics.tre(np.ones((1, 3)), np.zeros((1, 3)), (1, 1, 1))
    assert one.mean_mm == pytest.approx(np.sqrt(3)) and np.isnan(one.std_mm)


# -- through a Transform --------------------------------------------------------------------------------
def _landmarks(rng, size, n=50):
    hi = np.array(size) - 1
    src = rng.integers(0, hi, size=(n, 3), endpoint=True).astype(float)
    dst = np.clip(src + rng.integers(-4, 4, size=src.shape, endpoint=True), 0, hi).astype(float)
    return src, dst


def test_identity_tre_equals_the_landmark_displacement():
    size, spacing = (256, 256, 94), (0.97, 0.97, 2.5)  # DIR-Lab case 1 geometry
    src, dst = _landmarks(np.random.default_rng(1), size)
    result = metrics.landmark_tre(IdentityTransform(size, spacing), src, dst)
    expected = np.sqrt((((dst - src) * np.array(spacing)) ** 2).sum(axis=1))
    # float32 inside the Transform round-trips voxel indices to ~1e-5 voxel.
    np.testing.assert_allclose(result.continuous.per_landmark_mm, expected, atol=1e-4)
    np.testing.assert_array_equal(result.snapped.per_landmark_mm, expected)
    assert result.continuous.std_mm == pytest.approx(np.std(expected, ddof=1), abs=1e-4)
    np.testing.assert_allclose(
        result.continuous.axis_mean_mm, np.abs((dst - src) * np.array(spacing)).mean(axis=0), atol=1e-4
    )
    # The legacy handling maps integer landmarks to themselves under the identity too.
    np.testing.assert_allclose(
        metrics.legacy_tre(IdentityTransform(size, spacing), src, dst).per_landmark_mm, expected, atol=1e-6
    )


def test_snapped_and_continuous_differ_as_they_must():
    # A translation of 0.3 voxel in x: continuous TRE 0.3 voxel, snapped TRE 0 (rounds back to the landmark).
    size, spacing = (11, 5, 5), (2.0, 1.0, 1.0)
    t = AffineTransform(size, spacing, offset=np.array([0.3 * 2 / 10, 0.0, 0.0]))
    pts = np.array([[2.0, 1.0, 1.0], [7.0, 3.0, 2.0]])
    result = metrics.landmark_tre(t, pts, pts)
    np.testing.assert_allclose(result.continuous.per_landmark_mm, [0.6, 0.6], atol=1e-5)
    np.testing.assert_array_equal(result.snapped.per_landmark_mm, [0.0, 0.0])
    # ... and a 0.7 voxel shift snaps to a full voxel (2 mm), more than the continuous 1.4 mm.
    t = AffineTransform(size, spacing, offset=np.array([0.7 * 2 / 10, 0.0, 0.0]))
    result = metrics.landmark_tre(t, pts, pts)
    np.testing.assert_allclose(result.continuous.per_landmark_mm, [1.4, 1.4], atol=1e-5)
    np.testing.assert_array_equal(result.snapped.per_landmark_mm, [2.0, 2.0])


def test_legacy_tre_reproduces_a_hand_computed_value():
    # x axis: n = 10 voxels, spacing 2 mm; the map translates by t = 0.52 in normalised units.
    #   correct:  0-based p -> p + 0.52 * (n - 1) / 2 = p + 2.34
    #   legacy:   1-based q -> q + 0.52 * n / 2     = q + 2.6, rounded, compared with 1-based targets
    # landmark 0: T00 x = 3 (1-based 4), T50 x = 5 (1-based 6)
    #   continuous |5.34 - 5| = 0.34 vox = 0.68 mm; snapped round(5.34) = 5 -> 0 mm;
    #   legacy round(6.6) = 7 vs 6 -> 1 vox = 2 mm
    # landmark 1: T00 x = 0 (1-based 1), T50 x = 3 (1-based 4)
    #   continuous |2.34 - 3| = 0.66 vox = 1.32 mm; snapped 2 vs 3 -> 2 mm; legacy round(3.6) = 4 vs 4 -> 0 mm
    size, spacing = (10, 6, 5), (2.0, 1.0, 2.5)
    t = AffineTransform(size, spacing, offset=np.array([0.52, 0.0, 0.0]))
    src = np.array([[3.0, 1.0, 1.0], [0.0, 2.0, 2.0]])
    dst = np.array([[5.0, 1.0, 1.0], [3.0, 2.0, 2.0]])
    result = metrics.landmark_tre(t, src, dst)
    legacy = metrics.legacy_tre(t, src, dst)
    np.testing.assert_allclose(result.continuous.per_landmark_mm, [0.68, 1.32], atol=1e-5)
    np.testing.assert_allclose(result.snapped.per_landmark_mm, [0.0, 2.0])
    np.testing.assert_allclose(legacy.per_landmark_mm, [2.0, 0.0])
    assert legacy.mean_mm == pytest.approx(1.0)
    assert legacy.std_mm == pytest.approx(np.sqrt(2.0))


# -- intermediate phases ----------------------------------------------------------------------------------
def _sampled(k_offsets):
    base = np.array([[4.0, 5.0, 3.0], [10.0, 2.0, 6.0]])
    return {f"T{10 * k:02d}": base + np.array([0.0, 0.0, off]) for k, off in enumerate(k_offsets)}


def test_intermediate_tre_of_the_identity_under_both_pairings():
    # z offsets of the phases T00..T50 (voxels); z spacing 2.5 mm.
    offsets = [0, 1, 3, 4, 6, 8]
    size, spacing = (16, 12, 12), (1.0, 1.0, 2.5)
    sampled = _sampled(offsets)
    traj = metrics.intermediate_tre(IdentityTransform(size, spacing), sampled, "trajectory")
    seed = metrics.intermediate_tre(IdentityTransform(size, spacing), sampled, "seed")
    # trajectory step n: |T(10n) - T00|; seed step n: |T50 - T(50-10n)|.
    assert [r["mean_mm"] for r in traj] == pytest.approx([2.5 * o for o in offsets[1:]], abs=1e-4)
    assert [r["mean_mm"] for r in seed] == pytest.approx([2.5 * (8 - offsets[5 - n]) for n in range(1, 6)], abs=1e-4)
    assert [(r["source_phase"], r["target_phase"]) for r in seed][0] == ("T40", "T50")
    # Missing phases or a map without five steps: no intermediate TRE.
    assert metrics.intermediate_tre(IdentityTransform(size, spacing), {**sampled, "T20": None}, "seed") == []
    assert metrics.intermediate_tre(AffineTransform(size, spacing), sampled, "seed") == []


def test_intermediate_tre_uses_each_step_of_the_map():
    # Linear motion of 1 voxel in z per phase; phi_n translates by n voxels: exact under both pairings,
    # but only if step n (not the full map) is used for phase n.
    size, spacing = (16, 12, 21), (1.0, 1.0, 2.5)
    shift = (0.0, 0.0, 2.0 / (size[2] - 1))  # one voxel in normalised units
    transform = StepScaleShift(size, spacing, shift=shift, scale=0.0)
    sampled = _sampled([0, 1, 2, 3, 4, 5])
    for pairing in ("seed", "trajectory"):
        records = metrics.intermediate_tre(transform, sampled, pairing)
        assert [r["step"] for r in records] == [1, 2, 3, 4, 5]
        assert max(r["mean_mm"] for r in records) < 1e-4
        assert all(r["snapped_mean_mm"] == 0 for r in records)


# -- folding ------------------------------------------------------------------------------------------------
def test_identity_has_no_folding():
    size = (6, 5, 4)
    stats = metrics.folding(IdentityTransform(size, (1, 1, 2.5)), coords.voxel_grid(size))
    assert (stats.count, stats.fraction, stats.n_points) == (0, 0.0, 120)
    assert stats.min_det == pytest.approx(1.0) and stats.max_det == pytest.approx(1.0)
    assert stats.std_det == pytest.approx(0.0, abs=1e-6)


def test_affine_det_j_equals_det_a_everywhere():
    size, spacing = (9, 7, 5), (0.97, 0.97, 2.5)
    a = np.array([[1.1, 0.2, 0.0], [0.0, 0.9, 0.1], [0.05, 0.0, 1.2]])
    t = AffineTransform(size, spacing, a, np.array([0.1, -0.2, 0.05]))
    dets = t.jacobian_det_voxels(coords.voxel_grid(size))
    np.testing.assert_allclose(dets, np.linalg.det(a), rtol=1e-5)
    stats = metrics.folding(t, coords.voxel_grid(size), chunk=50)  # several chunks
    assert stats.min_det == pytest.approx(np.linalg.det(a), rel=1e-5)
    assert stats.fraction == 0.0
    # A reflection folds everything.
    flip = AffineTransform(size, spacing, np.diag([-1.0, 1.0, 1.0]))
    assert metrics.folding(flip, coords.voxel_grid(size)).fraction == 1.0


def test_constructed_folding_map_gives_the_right_fraction():
    # nx = 5: u_x = -1, -0.5, 0, 0.5, 1 and det J = 2 u_x, so x indices 0, 1, 2 fold: 3 of 5 = 60 %.
    size = (5, 4, 3)
    transform = SquareX(size, (1, 1, 1))
    stats = metrics.folding(transform, coords.voxel_grid(size), chunk=7)
    assert stats.n_points == 60 and stats.count == 36
    assert stats.fraction == pytest.approx(0.6)
    assert stats.min_det == pytest.approx(-2.0) and stats.max_det == pytest.approx(2.0)
    assert stats.mean_det == pytest.approx(0.0, abs=1e-6)
    # On a mask of the x >= 3 half only, nothing folds.
    mask = np.zeros((3, 4, 5), dtype=bool)
    mask[:, :, 3:] = True
    assert metrics.folding(transform, coords.mask_points(mask)).count == 0


def test_folding_per_step():
    size = (6, 5, 4)
    transform = StepScaleShift(size, (1, 1, 1))
    records = metrics.folding_per_step(transform, coords.voxel_grid(size))
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5]
    assert [r["min_det"] for r in records] == pytest.approx([(1 + 0.1 * n) ** 3 for n in range(1, 6)], rel=1e-5)
    assert metrics.folding_per_step(IdentityTransform(size, (1, 1, 1)), coords.voxel_grid(size)) == []
    with pytest.raises(ValueError, match="empty"):
        metrics.det_stats(np.array([]))


def test_folding_steps_is_one_call_and_matches_each_step():
    size = (6, 5, 4)
    transform = StepScaleShift(size, (1, 1, 1))
    pts = coords.voxel_grid(size)
    stats = metrics.folding_steps(transform, pts, chunk=33)
    assert len(stats) == 5
    for n, s in enumerate(stats, start=1):
        assert s == metrics.folding(transform, pts, step=n)
    assert metrics.step_records(stats) == metrics.folding_per_step(transform, pts)
    identity = metrics.folding_steps(IdentityTransform(size, (1, 1, 1)), pts)
    assert len(identity) == 1 and identity[0].min_det == identity[0].max_det == 1.0
    assert metrics.step_records(identity) == []


def test_folding_steps_of_an_rnr_map_come_from_one_pass(monkeypatch):
    from rnr.fitting.network import ResNetMap, ResNetTransform

    size = (8, 7, 5)
    model = ResNetMap(5, 16, seed=3)
    with torch.no_grad():
        for block in model.blocks:
            block.W3.mul_(100.0)
    transform = ResNetTransform(size, (1, 1, 2), model)
    pts = coords.voxel_grid(size)
    per_step = [metrics.folding(transform, pts, step=n) for n in range(1, 6)]
    calls = []
    real = model.steps_and_detj
    monkeypatch.setattr(model, "steps_and_detj", lambda *a, **k: calls.append(1) or real(*a, **k))
    stats = metrics.folding_steps(transform, pts)
    assert len(calls) == 1  # every step from one chained pass
    assert stats == per_step and any(s.count > 0 for s in stats)
