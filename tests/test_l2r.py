"""Learn2Reg's field format (rnr/data/l2r.py), out and in, checked by outside readers: nibabel reading the file as
Learn2Reg's evaluation does (``get_fdata()``, (H, W, D, 3), voxels, fixed -> moving, TRE with scipy's cubic
``map_coordinates``) and SimpleITK's DisplacementFieldTransform on the ITK form of the same field.

Tolerance 0.01 mm (the issue's figure). Derivation: on whole-voxel landmarks (DIR-Lab's and COPDgene's) a
trilinear interpolant, ITK's and scipy's cubic B-spline (which interpolates its samples) all return the
stored vector itself; the two files store the same vectors in float32, in voxels and in mm, so positions
agree to float32 rounding of values up to the image size (about 1e-5 mm here).
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from copdgene_files import write_case
from scipy import ndimage

from rnr import layout
from rnr.cli import main
from rnr.data.case import load_case
from rnr.data.copdgene_reader import convert_case
from rnr.data.l2r import l2r_image, l2r_name, read_l2r_field
from rnr.fitting.transform import FieldTransform
from rnr.io import InputError
from rnr.methods.field import read_field, voxel_to_world_vectors


@pytest.fixture(scope="module")
def copd_case(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("l2r")
    write_case(root / "src", 1)
    return convert_case(root / "src", 1, root / "case1")


def _analytic_field(size_xyz) -> np.ndarray:
    """A smooth displacement (nz, ny, nx, 3) in voxels, different along every axis (so that any axis or
    component mix-up shows): up to 2 voxels in x, 1.5 in y, 3 slices cranially (negative z)."""
    nx, ny, nz = size_xyz
    z, y, x = np.meshgrid(np.arange(nz) / nz, np.arange(ny) / ny, np.arange(nx) / nx, indexing="ij")
    return np.stack(
        [2.0 * np.sin(np.pi * y) * z, 1.5 * x * (1 - x) * 4, -3.0 * np.cos(0.5 * np.pi * z) * (0.5 + 0.5 * x)], axis=-1
    ).astype(np.float32)


def _itk_field(case_dir: Path, disp_vox: np.ndarray) -> sitk.Image:
    t00 = sitk.ReadImage(str(case_dir / "T00.nii.gz"))
    direction = np.asarray(t00.GetDirection()).reshape(3, 3)
    image = sitk.GetImageFromArray(voxel_to_world_vectors(disp_vox, direction, t00.GetSpacing()), isVector=True)
    image.CopyInformation(t00)
    return image


def _l2r_tre(path: Path, fixed: np.ndarray, moving: np.ndarray, spacing) -> np.ndarray:
    """Learn2Reg's TRE of one pair (its evaluation/utils.py, written here from its description)."""
    disp = nib.load(str(path)).get_fdata()
    u = np.stack([ndimage.map_coordinates(disp[..., i], fixed.T) for i in range(3)], axis=1)
    return np.linalg.norm((fixed + u - moving) * np.asarray(spacing), axis=1)


def test_both_formats_map_the_landmarks_to_the_same_positions(copd_case, tmp_path):
    case = load_case(copd_case)
    disp = _analytic_field(case.size_xyz)
    t00 = sitk.ReadImage(str(copd_case / "T00.nii.gz"))
    sitk.WriteImage(_itk_field(copd_case, disp), str(tmp_path / "field.nii.gz"))
    l2r = tmp_path / l2r_name(1, 1)
    sitk.WriteImage(l2r_image(disp, t00), str(l2r))
    assert l2r.name == "disp_0001_0001.nii.gz"

    # nibabel sees what Learn2Reg's evaluation expects: (H, W, D, 3) = (x, y, z, component), voxels.
    array = nib.load(str(l2r)).get_fdata()
    assert array.shape == (*case.size_xyz, 3)
    np.testing.assert_allclose(array, np.transpose(disp, (2, 1, 0, 3)), atol=1e-6)

    spacing = np.asarray(case.spacing_xyz)
    points = case.landmarks("T00")
    mapped = {}
    for name, values in (("itk", read_field(tmp_path / "field.nii.gz", case)), ("l2r", read_l2r_field(l2r, case))):
        mapped[name] = FieldTransform(case.size_xyz, case.spacing_xyz, values).apply_voxels(points)
    expected = points + disp[points[:, 2].astype(int), points[:, 1].astype(int), points[:, 0].astype(int)]
    for name, positions in mapped.items():
        assert np.abs((positions - expected) * spacing).max() <= 0.01, name
    # SimpleITK alone, on the ITK form: world points of T00 -> world points of T50.
    transform = sitk.DisplacementFieldTransform(
        sitk.Cast(sitk.ReadImage(str(tmp_path / "field.nii.gz")), sitk.sitkVectorFloat64)
    )
    world = [transform.TransformPoint(t00.TransformContinuousIndexToPhysicalPoint(p.tolist())) for p in points]
    back = np.array([t00.TransformPhysicalPointToContinuousIndex(w) for w in world])
    assert np.abs((back - mapped["l2r"]) * spacing).max() <= 0.01
    # Learn2Reg's own TRE of the l2r file equals ours on the mapped landmarks.
    theirs = _l2r_tre(l2r, points, case.landmarks("T50"), spacing)
    ours = np.linalg.norm((mapped["l2r"] - case.landmarks("T50")) * spacing, axis=1)
    np.testing.assert_allclose(theirs, ours, atol=0.01)


def test_a_wrong_l2r_field_is_one_line_naming_the_file(copd_case, tmp_path):
    case = load_case(copd_case)
    t00 = sitk.ReadImage(str(copd_case / "T00.nii.gz"))
    disp = _analytic_field(case.size_xyz)
    cases = {
        "missing.nii.gz": (None, "file not found"),
        "swapped.nii.gz": (
            sitk.GetImageFromArray(np.moveaxis(disp, -1, 0).transpose(0, 3, 2, 1).copy(), isVector=False),
            "found (H, W, D)",
        ),
        "scalar.nii.gz": (sitk.GetImageFromArray(disp[..., 0]), "with 1 component"),
        "nan.mha": (l2r_image(np.where(disp == disp.max(), np.nan, disp), t00), "NaN or infinite"),
    }
    for name, (image, words) in cases.items():
        if image is not None:
            sitk.WriteImage(image, str(tmp_path / name))
        with pytest.raises(InputError) as exc:
            read_l2r_field(tmp_path / name, case)
        assert "\n" not in str(exc.value) and str(tmp_path / name) in str(exc.value) and words in str(exc.value)


@pytest.mark.slow
def test_an_rnr_runs_l2r_field_gives_its_tre_back_through_method_field(converted_case, tmp_path, capsys):
    """rnr register (RNR) -> rnr export --format l2r -> rnr register (method field, format l2r): the same TRE to
    0.01 mm, per landmark; and Learn2Reg's own TRE formula on the file agrees."""
    mask = str(converted_case / layout.MASK_PROVIDED)
    runs = tmp_path / "runs"
    argv = ["register", "--case-dir", str(converted_case), "--mask", mask, "--no-progress"]
    rnr_settings = ["--set", "iterations=5", "--set", "width=16", "--set", "batch_size=500"]
    assert main([*argv, "--out", str(runs / "rnr" / "case1"), "--name", "rnr", *rnr_settings]) == 0
    export = tmp_path / "l2r"
    argv_export = [
        "export",
        "--format",
        "l2r",
        "--case-dir",
        str(converted_case),
        "--run-dir",
        str(runs / "rnr" / "case1"),
    ]
    assert main([*argv_export, "--out", str(export), "--device", "cpu"]) == 0
    assert sorted(p.name for p in export.iterdir()) == ["disp_0001_0001.nii.gz", layout.MANIFEST]
    pattern = str(export / "disp_{case:04d}_{case:04d}.nii.gz")
    field_settings = ["--set", "method=field", "--set", f"fields={pattern}", "--set", "format=l2r"]
    assert main([*argv, "--out", str(runs / "field" / "case1"), "--name", "field", *field_settings]) == 0
    record = {}
    for name in ("rnr", "field"):
        run = runs / name / "case1"
        assert (
            main(["evaluate", "--case-dir", str(converted_case), "--run-dir", str(run), "--mask", mask, "--no-figures"])
            == 0
        )
        record[name] = json.loads((run / layout.METRICS_JSON).read_text())
    assert record["field"]["tre"]["mean_mm"] == pytest.approx(record["rnr"]["tre"]["mean_mm"], abs=0.01)
    per = [np.array([p["tre_mm"] for p in r["tre"]["per_landmark"]]) for r in record.values()]
    np.testing.assert_allclose(per[0], per[1], atol=0.01)
    case = load_case(converted_case)
    theirs = _l2r_tre(export / "disp_0001_0001.nii.gz", case.landmarks("T00"), case.landmarks("T50"), case.spacing_xyz)
    np.testing.assert_allclose(theirs, per[0], atol=0.01)
