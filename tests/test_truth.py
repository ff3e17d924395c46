"""Evaluation against the exact motion (rnr/data/truth.py): the true motion, wrapped as a Transform and scored by
the same code as every map, scores 0; the identity scores the true displacement."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from rnr import layout
from rnr.data.case import load_case
from rnr.data.truth import load_case_truth
from rnr.evaluation.evaluate import compute_metrics
from rnr.evaluation.truth import TruthTransform, exact_metrics
from rnr.fitting.transform import IdentityTransform, Transform


@pytest.fixture(scope="module")
def case(converted_case):
    return load_case(converted_case)


def test_convert_copies_the_truth_of_the_phantom(case, phantom_dataset):
    assert (case.path / layout.TRUTH).read_bytes() == (phantom_dataset / "truth" / "case1.npz").read_bytes()


def test_the_true_motion_scores_zero(case):
    truth = load_case_truth(case)
    mask = case.load_mask(case.provided_mask_path)
    transform = TruthTransform(case.size_xyz, case.spacing_xyz, truth)
    exact = exact_metrics(transform, truth, mask, "trajectory")
    assert exact["tre"]["mean_mm"] == pytest.approx(0.0, abs=1e-4)
    assert exact["dense"]["max_mm"] == pytest.approx(0.0, abs=1e-4)
    assert exact["dense"]["n_points"] == int(mask.sum())
    assert [s["target_phase"] for s in exact["steps"]] == ["T10", "T20", "T30", "T40", "T50"]
    assert max(s["mean_mm"] for s in exact["steps"]) == pytest.approx(0.0, abs=1e-4)
    # Through the whole evaluation: the file-landmark TRE of the truth is not 0 (whole voxels), the exact one is.
    record = compute_metrics(case, transform, mask, "trajectory", step_folding=False)
    assert record["exact"]["tre"]["mean_mm"] == pytest.approx(0.0, abs=1e-4)
    assert record["tre"]["mean_mm"] > 0.5


def test_the_identity_scores_the_true_displacement(case):
    truth = load_case_truth(case)
    mask = case.load_mask(case.provided_mask_path)
    exact = exact_metrics(IdentityTransform(case.size_xyz, case.spacing_xyz), truth, mask, "seed")
    displacement = np.linalg.norm((truth.landmarks["T50"] - truth.landmarks["T00"]) * case.spacing_xyz, axis=1)
    assert exact["tre"]["mean_mm"] == pytest.approx(displacement.mean(), rel=1e-5)
    # Per landmark, in file order: the identity's exact TRE is each landmark's true displacement.
    per_landmark = exact["tre"]["per_landmark"]
    assert [r["landmark"] for r in per_landmark] == list(range(len(displacement)))
    np.testing.assert_allclose([r["tre_mm"] for r in per_landmark], displacement, rtol=1e-5)  # float32 mapping
    signed = (truth.landmarks["T00"] - truth.landmarks["T50"]) * case.spacing_xyz  # predicted - target
    np.testing.assert_allclose([[r["dx_mm"], r["dy_mm"], r["dz_mm"]] for r in per_landmark], signed, atol=1e-4)
    points = np.argwhere(mask)[:, ::-1].astype(float)
    dense = np.linalg.norm(truth.displacement_mm(points, "T50", lung=True), axis=1)
    assert exact["dense"]["rms_mm"] == pytest.approx(np.sqrt(np.mean(dense**2)), rel=1e-5)


def test_a_case_without_truth_has_no_exact_record(case, tmp_path):
    copy = shutil.copytree(case.path, tmp_path / "case")
    (copy / layout.TRUTH).unlink()
    record = compute_metrics(
        load_case(copy),
        IdentityTransform(case.size_xyz, case.spacing_xyz),
        case.load_mask(case.provided_mask_path),
        step_folding=False,
    )
    assert record["exact"] is None


class StepTranslation(Transform):
    """phi_n(x) = x + (n / 5) d: five steps, each adding a fifth of a translation d (voxels); phi = phi_5."""

    kind = "test-step-translation"
    n_steps = 5

    def __init__(self, size_xyz, spacing_xyz, shift_vox):
        super().__init__(size_xyz, spacing_xyz)
        self.shift = torch.as_tensor(2 * np.asarray(shift_vox) / (np.asarray(size_xyz) - 1), dtype=torch.float32)

    def map_normalised(self, u, step=None):
        n = self.n_steps if step is None else step
        return u + self.shift.to(u) * n / self.n_steps


def test_the_default_evaluation_scores_the_full_map_against_the_truth(case):
    """compute_metrics' default path (step folding: every phi_n in one pass) must score phi = phi_5 against the
    true T50 motion, not phi_1. Expected values from the truth and the translation alone."""
    truth = load_case_truth(case)
    mask = case.load_mask(case.provided_mask_path)
    shift = (truth.landmarks["T50"] - truth.landmarks["T00"]).mean(axis=0)  # the mean landmark motion, voxels
    record = compute_metrics(case, StepTranslation(case.size_xyz, case.spacing_xyz, shift), mask, "seed")
    points = np.argwhere(mask)[:, ::-1].astype(float)
    error = np.linalg.norm((points + shift - truth.positions(points, "T50", lung=True)) * case.spacing_xyz, axis=1)
    dense = record["exact"]["dense"]
    assert dense["n_points"] == len(points)
    assert dense["rms_mm"] == pytest.approx(np.sqrt(np.mean(error**2)), abs=1e-3)
    assert dense["mean_mm"] == pytest.approx(error.mean(), abs=1e-3)
    assert dense["max_mm"] == pytest.approx(error.max(), abs=1e-3)
