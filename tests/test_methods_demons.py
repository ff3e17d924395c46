"""The demons baseline (rnr/methods/demons.py): the field transform, the direction of SimpleITK's field, the
multi-resolution registration on a phantom case, and evaluation through the project's one TRE code path."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from rnr import coords, layout
from rnr.config import SettingsError
from rnr.data.case import load_case
from rnr.evaluation import metrics
from rnr.evaluation.evaluate import evaluate_run
from rnr.fitting.transform import FieldTransform, IdentityTransform
from rnr.methods.demons import DemonsSettings, demons_register, level_factors, preprocess
from rnr.methods.settings import settings_from_mapping
from rnr.methods.table import load_transform
from rnr.registration import register_case

SIZE = (20, 16, 12)  # (nx, ny, nz)
SPACING = (1.0, 1.5, 2.5)  # mm, anisotropic like DIR-Lab


def _smooth_field(size_xyz, seed: int = 0) -> np.ndarray:
    """A smooth random displacement (nz, ny, nx, 3) in voxels (sums of low-frequency sines)."""
    rng = np.random.default_rng(seed)
    nx, ny, nz = size_xyz
    z, y, x = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    out = np.zeros((nz, ny, nx, 3))
    for c in range(3):
        for _ in range(3):
            f = rng.uniform(0.05, 0.3, size=3)
            out[..., c] += rng.uniform(-1, 1) * np.sin(f[0] * x + f[1] * y + f[2] * z + rng.uniform(0, 6))
    return out.astype(np.float32)


# ------------------------------------------------------------------------------------------ FieldTransform
def test_field_transform_interpolates_in_voxels_with_xyz_order():
    disp = np.zeros(coords.size_xyz_to_shape_zyx(SIZE) + (3,), dtype=np.float32)
    disp[..., 0] = 2.0  # dx
    disp[..., 2] = -1.5  # dz
    t = FieldTransform(SIZE, SPACING, disp)
    pts = np.array([[3.0, 4.0, 5.0], [10.25, 7.5, 2.75]])
    np.testing.assert_allclose(t.apply_voxels(pts), pts + [2.0, 0.0, -1.5], atol=1e-5)
    # A field that is linear in the voxel index is reproduced exactly between voxel centres.
    nx, ny, nz = SIZE
    z, y, x = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    lin = np.stack([0.1 * z, 0.2 * x, -0.05 * y], axis=-1).astype(np.float32)  # d = (0.1 z, 0.2 x, -0.05 y)
    t = FieldTransform(SIZE, SPACING, lin)
    pts = np.array([[3.3, 4.6, 5.2], [12.5, 1.25, 9.75]])
    expected = pts + np.stack([0.1 * pts[:, 2], 0.2 * pts[:, 0], -0.05 * pts[:, 1]], axis=1)
    np.testing.assert_allclose(t.apply_voxels(pts), expected, atol=1e-4)
    # Outside the grid the field is clamped to the border value.
    outside = np.array([[-3.0, 2.0, 2.0]])
    np.testing.assert_allclose(t.apply_voxels(outside) - outside, [[0.2, 0.0, -0.1]], atol=1e-5)


def test_field_transform_jacobian_is_the_discrete_gradient_of_the_field():
    disp = _smooth_field(SIZE)
    t = FieldTransform(SIZE, SPACING, disp)
    grid = coords.voxel_grid(SIZE)
    jac = t.jacobian_normalised(torch.as_tensor(coords.voxel_to_normalised(grid, SIZE), dtype=torch.float32))
    # Voxel-unit Jacobian I + d(disp)/d(index) by numpy.gradient (central inside, one-sided at the border).
    grads = np.stack([np.stack(np.gradient(disp[..., i], axis=(2, 1, 0)), axis=-1) for i in range(3)], axis=-2)
    expected = np.eye(3) + grads.reshape(-1, 3, 3)
    # Normalised J[i, j] = voxel J[i, j] * half_j / half_i with half = (n - 1) / 2.
    half = np.array([(n - 1) / 2 for n in SIZE])
    np.testing.assert_allclose(jac.numpy(), expected * half[None, None, :] / half[None, :, None], atol=2e-4)
    dets = t.jacobian_det_voxels(grid)
    np.testing.assert_allclose(dets, np.linalg.det(expected), atol=2e-4)


def test_field_transform_folding_goes_through_metrics():
    nx, ny, nz = SIZE
    disp = np.zeros((nz, ny, nx, 3), dtype=np.float32)
    x = np.arange(nx, dtype=np.float32)
    # dx = -1.5 (x - 6) on x = 7..11, else 0: the central difference is -1.5 at x = 7..10 (det -0.5), and
    # +3 and +3.75 at x = 11 and 12, where the field jumps back to 0 (det 4 and 4.75).
    disp[..., 0] = np.where((x > 6) & (x < 12), -1.5 * (x - 6), 0.0)
    t = FieldTransform(SIZE, SPACING, disp)
    pts = coords.voxel_grid(SIZE)
    stats = metrics.folding(t, pts)
    folded = (pts[:, 0] >= 7) & (pts[:, 0] <= 10)
    assert stats.count == int(folded.sum())
    assert stats.max_det == pytest.approx(4.75, abs=1e-4)
    assert stats.min_det == pytest.approx(-0.5, abs=1e-4)
    assert metrics.folding(FieldTransform(SIZE, SPACING), pts).count == 0


def test_field_transform_checkpoint_round_trip(tmp_path):
    disp = _smooth_field(SIZE, seed=1)
    t = FieldTransform(SIZE, SPACING, disp)
    t.save(tmp_path / "ckpt.pt", case=3)
    loaded, meta = load_transform(tmp_path / "ckpt.pt")
    assert isinstance(loaded, FieldTransform) and loaded.kind == "demons" and meta["case"] == 3
    assert loaded.size_xyz == SIZE and loaded.spacing_xyz == SPACING
    np.testing.assert_array_equal(loaded.displacement_voxels(), t.displacement_voxels())
    np.testing.assert_allclose(loaded.displacement_voxels(), disp, atol=1e-5)
    pts = np.random.default_rng(0).uniform(0, 10, size=(50, 3))
    np.testing.assert_array_equal(loaded.apply_voxels(pts), t.apply_voxels(pts))


# ------------------------------------------------------------------------------------- direction of the field
def _blobs(size_xyz, spacing_xyz, shift_vox) -> np.ndarray:
    """HU volume (nz, ny, nx): Gaussian blobs on air, content moved by ``shift_vox`` (x, y, z) voxels."""
    nx, ny, nz = size_xyz
    sx, sy, sz = spacing_xyz
    z, y, x = np.meshgrid(np.arange(nz) * sz, np.arange(ny) * sy, np.arange(nx) * sx, indexing="ij")
    rng = np.random.default_rng(0)
    vol = np.full(x.shape, -1000.0)
    lo = np.array([0.25 * nx * sx, 0.25 * ny * sy, 0.25 * nz * sz])
    hi = np.array([0.75 * nx * sx, 0.75 * ny * sy, 0.75 * nz * sz])
    shift_mm = np.asarray(shift_vox) * np.asarray(spacing_xyz)
    for _ in range(12):
        c = rng.uniform(lo, hi) + shift_mm
        vol += 600 * np.exp(-((x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2) / (2 * 3.0**2))
    return vol.astype(np.float32)


def test_demons_field_direction_and_axis_order_on_a_known_shift():
    """T50 = T00 content moved by +2 voxels in x and -2 in z: phi must move T00 points by (+2, 0, -2)."""
    size, spacing, shift = (40, 32, 24), (1.0, 1.5, 2.5), (2.0, 0.0, -2.0)
    fixed = _blobs(size, spacing, (0, 0, 0))
    moving = _blobs(size, spacing, shift)
    params = DemonsSettings(
        demons_window_hu=(-1000.0, 0.0), demons_mask_margin_mm=0.0, demons_shrink=(2, 1), demons_iterations=(100, 50)
    )
    disp = demons_register(fixed, moving, np.ones(fixed.shape, bool), spacing, params)
    assert disp.shape == coords.size_xyz_to_shape_zyx(size) + (3,)
    # Where the blobs are (the only places with image evidence), the field is the shift, in voxels.
    strong = fixed > -900
    median = np.median(disp[strong], axis=0)
    np.testing.assert_allclose(median, shift, atol=0.3)
    # And the same through the Transform: the blob centres' T00 positions map to their T50 positions.
    t = FieldTransform(size, spacing, disp)
    pts = coords.mask_points(strong)
    moved = t.apply_voxels(pts) - pts
    np.testing.assert_allclose(np.median(moved, axis=0), shift, atol=0.3)


def test_preprocess_windows_and_masks():
    hu = np.array([[[-1200.0, -1000.0, -600.0, 0.0, 500.0]]], dtype=np.float32)
    mask = np.array([[[True, True, True, True, False]]])
    params = DemonsSettings(demons_window_hu=(-1000.0, -200.0), demons_mask_margin_mm=0.0)
    np.testing.assert_allclose(preprocess(hu, mask, (1.0, 1.0, 1.0), params), [[[0.0, 0.0, 0.5, 1.0, 1.0]]])
    hu2 = np.full((1, 1, 9), -1000.0, dtype=np.float32)
    mask2 = np.zeros((1, 1, 9), bool)
    mask2[0, 0, 4] = True
    out = preprocess(hu2, mask2, (2.0, 1.0, 1.0), DemonsSettings(demons_mask_margin_mm=4.0))  # 4 mm = 2 voxels in x
    np.testing.assert_array_equal(out[0, 0], [1, 1, 0, 0, 0, 0, 0, 1, 1])


def test_level_factors_follow_spacing_and_size():
    assert level_factors((256, 256, 94), (0.97, 0.97, 2.5), 4, 8) == (4, 4, 2)
    assert level_factors((256, 256, 94), (0.97, 0.97, 2.5), 1, 8) == (1, 1, 1)
    assert level_factors((20, 40, 30), (1.0, 1.0, 1.0), 4, 8) == (2, 4, 3)


def test_demons_settings_keys_and_defaults():
    s = settings_from_mapping({"method": "demons"})
    assert s.params == DemonsSettings()
    p = settings_from_mapping(
        {"method": "demons", "demons_iterations": [20, 10], "demons_shrink": [2, 1], "demons_sigma": 2}
    ).params
    assert (p.demons_iterations, p.demons_shrink, p.demons_sigma) == ((20, 10), (2, 1), 2.0)
    for bad in (
        {"demons_iterations": [20, 10]},
        {"demons_shrink": [0, 1, 1]},
        {"demons_iterations": "20"},
        {"demons_sigma": -1},
        {"demons_window_hu": [-200, -1000]},
    ):
        with pytest.raises(SettingsError):
            settings_from_mapping({"method": "demons", **bad})
    # Keys of the loop-based methods mean nothing to demons: an error naming their owner.
    with pytest.raises(SettingsError, match="'lr' belongs to method rnr/idir, not demons"):
        settings_from_mapping({"method": "demons", "lr": 1e-3})


# ------------------------------------------------------------------------------------- on a phantom case
def test_demons_registration_halves_tre_and_evaluates_like_any_map(phantom_case8, tmp_path):
    case = load_case(phantom_case8)
    mask = case.load_mask(case.path / layout.MASK_PROVIDED)
    settings = settings_from_mapping({"method": "demons", "device": "cpu"})
    out = tmp_path / "run"
    result = register_case(case, mask, settings, out, name="demons", progress=False)

    source, target = case.landmarks("T00"), case.landmarks("T50")
    before = metrics.landmark_tre(IdentityTransform(case.size_xyz, case.spacing_xyz), source, target)
    after = metrics.landmark_tre(result.transform, source, target)
    # Demons' force assumes that a tissue point keeps its intensity; on the phantom the lungs grow denser as
    # they compress (mass-preserving, like 4DCT), so on this large-motion case it recovers only part of the
    # motion (measured: 14.98 -> 11.39 mm at the test scale), as demons-type methods trail NCC-based ones on
    # DIR-Lab. What is checked here is that it registers and evaluates like any map.
    assert after.continuous.mean_mm <= 0.85 * before.continuous.mean_mm
    assert after.snapped.mean_mm <= 0.85 * before.snapped.mean_mm

    # Run folder: the same outputs as RNR's, with the demons log and a CPU record.
    record = json.loads((out / layout.RUN_JSON).read_text())
    assert record["method"] == "demons" and record["device"] == "cpu" and record["wall_s"] > 0
    assert record["iterations"] == sum(DemonsSettings().demons_iterations)
    log = pd.read_csv(out / layout.LOSS_CSV)
    assert list(log.columns[:2]) == ["iteration", "loss"] and len(log) == record["iterations"]
    assert log.groupby("level")["loss"].last().iloc[-1] < log["loss"].iloc[0]
    warped = pd.read_csv(out / layout.WARPED_LANDMARKS)[["x_vox", "y_vox", "z_vox"]].to_numpy()
    np.testing.assert_allclose(warped, after.predicted_vox, atol=1e-6)

    # rnr evaluate on the run folder: the checkpoint reloads as a FieldTransform and TRE / folding come
    # from the one code path (metrics.landmark_tre, metrics.folding) that RNR's runs use.
    metrics_record = evaluate_run(
        phantom_case8, out, mask_path=case.path / layout.MASK_PROVIDED, device="cpu", figures=False
    )
    assert metrics_record["transform_kind"] == "demons" and metrics_record["method"] == "demons"
    assert metrics_record["tre"]["mean_mm"] == pytest.approx(after.continuous.mean_mm, rel=1e-6)
    assert metrics_record["tre"]["snapped_mean_mm"] == pytest.approx(after.snapped.mean_mm, rel=1e-6)
    assert metrics_record["folding"]["fraction"] < 0.01
    assert metrics_record["folding"]["n_points"] == int(mask.sum())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_demons_records_the_cpu_even_when_the_settings_ask_for_cuda(phantom_case8, tmp_path):
    case = load_case(phantom_case8)
    mask = case.load_mask(case.path / layout.MASK_PROVIDED)
    settings = settings_from_mapping({"method": "demons", "device": "cuda", "demons_iterations": [20, 10, 5]})
    register_case(case, mask, settings, tmp_path, name="demons", progress=False)
    record = json.loads((tmp_path / layout.RUN_JSON).read_text())
    assert record["device"] == "cpu"
    loaded, meta = load_transform(tmp_path / layout.CHECKPOINT, "cuda")
    assert meta["device"] == "cpu" and loaded.field.device.type == "cuda"
