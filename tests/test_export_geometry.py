"""The exported displacement field read back by SimpleITK alone, for an analytic map (no fit): the file carries
T00's frame (direction included) and moves every T00 landmark where the map's formula puts it. Fast: the
slow export tests (test_export.py) cover fitted maps, warped images and det J."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from rnr import layout
from rnr.evaluation.export import export_run
from rnr.fitting.transform import AffineTransform

# phi(u) = A u + t in normalised coordinates: a different scaling per axis and a shift, so that a field read
# at the wrong place, or with an axis flipped, moves the landmarks elsewhere.
MATRIX = np.diag([0.95, 1.0, 1.08])
OFFSET = np.array([0.03, -0.02, 0.05])


def _expected_voxels(points_vox: np.ndarray, size_xyz: np.ndarray) -> np.ndarray:
    """phi of 0-based voxel points by the formula: u = -1 + 2 i / (n - 1), phi(u) = A u + t, back to i."""
    half = (size_xyz - 1) / 2.0
    u = points_vox / half - 1.0
    return (u @ MATRIX.T + OFFSET + 1.0) * half


def test_exported_field_has_t00s_frame_and_moves_the_landmarks(converted_case, tmp_path):
    t00 = sitk.ReadImage(str(converted_case / layout.image_name("T00")))
    size = np.array(t00.GetSize(), dtype=float)
    run = tmp_path / "run"
    run.mkdir()
    AffineTransform(t00.GetSize(), t00.GetSpacing(), MATRIX, OFFSET).save(run / layout.CHECKPOINT)
    export_run(converted_case, run, tmp_path / "export", device="cpu", steps=False, warped=False, detj=False)

    field = sitk.ReadImage(str(tmp_path / "export" / layout.FIELD))
    # The converted images are not axis-aligned in ITK's world (direction diag(1, 1, -1)): the field must say so.
    assert np.allclose(np.reshape(t00.GetDirection(), (3, 3)), np.diag([1.0, 1.0, -1.0]))
    np.testing.assert_allclose(field.GetDirection(), t00.GetDirection(), atol=1e-6)
    np.testing.assert_allclose(field.GetOrigin(), t00.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(field.GetSpacing(), t00.GetSpacing(), rtol=1e-6)
    assert field.GetSize() == t00.GetSize() and field.GetNumberOfComponentsPerPixel() == 3

    itk = sitk.DisplacementFieldTransform(sitk.Cast(field, sitk.sitkVectorFloat64))
    landmarks = np.loadtxt(converted_case / layout.landmarks_name("T00"), delimiter=",", skiprows=1)[:, :3]
    expected = _expected_voxels(landmarks, size)
    for point, target in zip(landmarks, expected, strict=True):
        world = itk.TransformPoint(t00.TransformContinuousIndexToPhysicalPoint(point.tolist()))
        np.testing.assert_allclose(world, t00.TransformContinuousIndexToPhysicalPoint(target.tolist()), atol=2e-3)
