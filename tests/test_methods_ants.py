"""Method ``ants`` (rnr/methods/ants.py): the direction and size of the recovered motion on analytic
translations and a smooth analytic deformation (ANTs maps points the opposite way to images: this is where
that is checked), the run on a phantom case through ``rnr register`` / ``rnr evaluate``, and the one-line
error without the package."""

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
from rnr.methods.ants import THREADS_VARIABLE, AntsSettings, ants_register
from rnr.methods.settings import settings_for_method, settings_from_mapping
from rnr.registration import register_case

# Three resolutions (shrink 4, 2, 1) for the 40 x 32 x 24 synthetic cases; the preset's metric and radius.
QUICK = AntsSettings(ants_iterations=(40, 20, 10))


@pytest.fixture(autouse=True)
def _restore_thread_variable(monkeypatch):
    """ants_register sets ITK's thread variable; give the environment back as it was."""
    monkeypatch.setenv(THREADS_VARIABLE, "1")


def _register(phi_inverse):
    t00, t50, grid = case_images(phi_inverse)
    disp = ants_register(t00, t50, np.ones(t00.shape, bool), SPACING, QUICK, threads=1)
    return disp, t00, grid


@pytest.mark.slow  # runs the external toolkit (quick tier: settings and the missing-package error only)
def test_a_translation_is_recovered_with_its_sign_and_size():
    """T50 = T00 content moved by (+2, 0, -5) mm: phi must carry T00 points by that vector, not its opposite."""
    shift = (2.0, 0.0, -5.0)
    phi, psi = translation(shift)
    disp, t00, grid = _register(psi)
    assert disp.shape == t00.shape + (3,) and disp.dtype == np.float32
    recovered, _ = recovered_vs_true(disp, phi, t00, grid)
    np.testing.assert_allclose(np.median(recovered, axis=0), shift, atol=0.35)


@pytest.mark.slow  # runs the external toolkit (quick tier: settings and the missing-package error only)
def test_a_smooth_deformation_is_recovered_with_its_sign_and_size():
    phi, psi = smooth(3.0)
    disp, t00, grid = _register(psi)
    recovered, true = recovered_vs_true(disp, phi, t00, grid)
    error = np.linalg.norm(recovered - true, axis=1)
    size = np.linalg.norm(true, axis=1)
    assert np.median(size) > 1.5
    assert np.median(error) < 0.25 * np.median(size)
    for axis in range(3):
        slope = np.polyfit(true[:, axis], recovered[:, axis], 1)[0]
        assert 0.7 < slope < 1.3, (axis, slope)


def test_settings_keys_and_checks():
    assert settings_for_method("ants").params == AntsSettings()
    p = settings_from_mapping({"method": "ants", "ants_iterations": [10, 5], "ants_cc_radius": 4}).params
    assert (p.ants_iterations, p.ants_cc_radius) == ((10, 5), 4)
    for bad in ({"ants_iterations": []}, {"ants_iterations": [10, -1]}, {"ants_cc_radius": 0}, {"ants_flow_sigma": -1}):
        with pytest.raises(SettingsError):
            settings_from_mapping({"method": "ants", **bad})


def test_without_the_package_the_method_names_the_extra(phantom_case8, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ants", None)  # what a missing package looks like to import
    case = load_case(phantom_case8)
    mask = case.load_mask(case.path / layout.MASK_PROVIDED)
    with pytest.raises(SettingsError, match=r"method 'ants' needs the package antspyx .*\.\[baselines\]"):
        register_case(case, mask, settings_for_method("ants"), tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / layout.CHECKPOINT).exists()


@pytest.mark.slow  # as elastix's: a registration of a phantom case with the external toolkit
def test_ants_halves_tre_without_folding_and_evaluates_like_any_map(phantom_case8, tmp_path):
    """The preset on a phantom case (56 x 44 x 30 voxels), through register_case and evaluate_run."""
    case = load_case(phantom_case8)
    mask = case.load_mask(case.path / layout.MASK_PROVIDED)
    out = tmp_path / "run"
    result = register_case(case, mask, settings_for_method("ants"), out, name="ants", progress=False)
    source, target = case.landmarks("T00"), case.landmarks("T50")
    before = metrics.landmark_tre(IdentityTransform(case.size_xyz, case.spacing_xyz), source, target)
    after = metrics.landmark_tre(result.transform, source, target)
    assert after.continuous.mean_mm <= 0.5 * before.continuous.mean_mm
    record = json.loads((out / layout.RUN_JSON).read_text())
    assert (record["method"], record["device"]) == ("ants", "cpu") and record["wall_s"] > 0
    assert record["ants_max_iterations"] == sum(AntsSettings().ants_iterations)
    scored = evaluate_run(phantom_case8, out, mask_path=case.path / layout.MASK_PROVIDED, device="cpu", figures=False)
    assert (scored["transform_kind"], scored["method"]) == ("ants", "ants")
    assert scored["tre"]["mean_mm"] == pytest.approx(after.continuous.mean_mm, rel=1e-6)
    assert scored["folding"]["count"] == 0
