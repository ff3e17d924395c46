"""Method ``elastix`` (rnr/methods/elastix.py): the direction and size of the recovered motion on analytic
translations and a smooth analytic deformation, the parameter map of the preset, the run on a phantom case
through ``rnr register`` / ``rnr evaluate``, and the one-line error without the package."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from synthetic_motion import SPACING, case_images, recovered_vs_true, smooth, translation

from rnr import layout
from rnr.config import SettingsError
from rnr.data.case import load_case
from rnr.evaluation import metrics
from rnr.evaluation.evaluate import evaluate_run
from rnr.fitting.transform import IdentityTransform
from rnr.methods.elastix import ElastixSettings, elastix_register, parameter_map
from rnr.methods.settings import settings_for_method, settings_from_mapping
from rnr.registration import register_case

# Small, fast settings for the 40 x 32 x 24 synthetic cases: the preset's metric, penalty and sampler on a
# 12 mm grid (the motions below vary over 40 mm and more), two resolutions, 100 iterations each.
QUICK = ElastixSettings(
    elastix_grid_spacing_mm=12.0, elastix_grid_schedule=(2.0, 1.0), elastix_pyramid=(2, 1), elastix_iterations=100
)


def _register(phi_inverse):
    t00, t50, grid = case_images(phi_inverse)
    disp, log = elastix_register(t00, t50, np.ones(t00.shape, bool), SPACING, QUICK, seed=3, threads=1)
    return disp, log, t00, grid


@pytest.mark.slow  # runs the external toolkit (quick tier: settings and the missing-package error only)
@pytest.mark.parametrize("shift_mm", [(2.0, 0.0, -5.0), (-3.0, 1.5, 0.0)])
def test_a_translation_is_recovered_with_its_sign_and_size(shift_mm, tmp_path, monkeypatch):
    """T50 = T00 content moved by ``shift_mm``: phi must carry T00 points by +shift (x, y, z), in voxels."""
    phi, psi = translation(shift_mm)
    monkeypatch.chdir(tmp_path)
    disp, log, t00, grid = _register(psi)
    assert list(tmp_path.iterdir()) == []  # elastix and transformix write into a temporary folder only
    assert disp.shape == t00.shape + (3,) and disp.dtype == np.float32
    recovered, true = recovered_vs_true(disp, phi, t00, grid)
    np.testing.assert_allclose(np.median(recovered, axis=0), shift_mm, atol=0.25)
    # The log is elastix's own: one row per iteration of every resolution, metric (negative NCC) falling.
    assert list(log["level"].unique()) == [0, 1] and len(log) == 2 * QUICK.elastix_iterations
    assert log["loss"].iloc[-1] < log["loss"].iloc[0] < 0


@pytest.mark.slow  # runs the external toolkit (quick tier: settings and the missing-package error only)
def test_a_smooth_deformation_is_recovered_with_its_sign_and_size():
    phi, psi = smooth(3.0)
    disp, _, t00, grid = _register(psi)
    recovered, true = recovered_vs_true(disp, phi, t00, grid)
    error = np.linalg.norm(recovered - true, axis=1)
    size = np.linalg.norm(true, axis=1)
    assert np.median(size) > 1.5  # the motion is there to find
    assert np.median(error) < 0.25 * np.median(size)
    # Component by component the recovered motion follows the true one: the right sign, most of the size.
    for axis in range(3):
        slope = np.polyfit(true[:, axis], recovered[:, axis], 1)[0]
        assert 0.7 < slope < 1.3, (axis, slope)


def test_parameter_map_follows_the_settings():
    p = parameter_map(ElastixSettings(), seed=7)
    assert p["Metric"] == ["AdvancedNormalizedCorrelation", "TransformBendingEnergyPenalty"]
    assert p["Metric1RelativeWeight"] == ["0.05"] and p["RandomSeed"] == ["7"]
    assert p["NumberOfResolutions"] == ["5"] and p["ImagePyramidSchedule"][:6] == ["4", "4", "4", "3", "3", "3"]
    assert p["GridSpacingSchedule"] == ["16.0", "8.0", "4.0", "2.0", "1.0"]
    assert p["FinalGridSpacingInPhysicalUnits"] == ["5.0"] * 3 and p["MaximumNumberOfIterations"] == ["500"]
    assert (p["ImageSampler"], p["NumberOfSpatialSamples"]) == (["RandomCoordinate"], ["2000"])
    no_penalty = parameter_map(ElastixSettings(elastix_bending_weight=0.0), seed=3)
    assert no_penalty["Metric"] == ["AdvancedNormalizedCorrelation"] and "Metric1RelativeWeight" not in no_penalty


def test_settings_keys_and_checks():
    assert settings_for_method("elastix").params == ElastixSettings()
    for bad in (
        {"elastix_pyramid": [4, 2]},
        {"elastix_pyramid": [0, 1, 1, 1, 1]},
        {"elastix_metric": "NCC"},
        {"elastix_sampler": "Grid"},
        {"elastix_iterations": 0},
        {"elastix_bending_weight": -1},
    ):
        with pytest.raises(SettingsError):
            settings_from_mapping({"method": "elastix", **bad})


def test_without_the_package_the_method_names_the_extra(phantom_case8, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "itk", None)  # what a missing package looks like to import
    case = load_case(phantom_case8)
    mask = case.load_mask(case.path / layout.MASK_PROVIDED)
    with pytest.raises(SettingsError, match=r"method 'elastix' needs the package itk-elastix .*\.\[baselines\]") as e:
        register_case(case, mask, settings_for_method("elastix"), tmp_path / "run", progress=False)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "run" / layout.CHECKPOINT).exists()


@pytest.mark.slow
def test_elastix_halves_tre_without_folding_and_evaluates_like_any_map(phantom_case8, tmp_path):
    """The preset (fewer iterations) on a phantom case, through register_case and evaluate_run."""
    case = load_case(phantom_case8)
    mask = case.load_mask(case.path / layout.MASK_PROVIDED)
    # The final control-point grid at 20 mm, coarser than the test scale's 11 mm slices (the 5 mm default is
    # for DIR-Lab's 2.5 mm slices: finer than a slice it leaves z unconstrained and folds).
    settings = settings_for_method("elastix", elastix_iterations=100, elastix_grid_spacing_mm=20.0)
    out = tmp_path / "run"
    result = register_case(case, mask, settings, out, name="elastix", progress=False)
    source, target = case.landmarks("T00"), case.landmarks("T50")
    before = metrics.landmark_tre(IdentityTransform(case.size_xyz, case.spacing_xyz), source, target)
    after = metrics.landmark_tre(result.transform, source, target)
    assert after.continuous.mean_mm <= 0.5 * before.continuous.mean_mm
    record = json.loads((out / layout.RUN_JSON).read_text())
    assert (record["method"], record["device"]) == ("elastix", "cpu") and record["wall_s"] > 0
    assert record["iterations"] == 5 * 100 and record["parameter_map"]["MaximumNumberOfIterations"] == ["100"]
    scored = evaluate_run(phantom_case8, out, mask_path=case.path / layout.MASK_PROVIDED, device="cpu", figures=False)
    assert (scored["transform_kind"], scored["method"]) == ("elastix", "elastix")
    assert scored["tre"]["mean_mm"] == pytest.approx(after.continuous.mean_mm, rel=1e-6)
    assert scored["folding"]["count"] == 0
