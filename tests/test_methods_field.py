"""Method ``field`` (rnr/methods/field.py): displacement fields a user brings, read in ITK's convention on the
T00 grid, checked (every wrong input is one line naming the file, what was expected and what was found), and
scored through ``rnr register`` / ``rnr evaluate`` like any method."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from rnr import layout
from rnr.cli import main
from rnr.config import SettingsError
from rnr.data.case import load_case
from rnr.io import InputError
from rnr.methods.field import FieldSettings, Frame, read_field, voxel_to_world_vectors, world_to_voxel_vectors
from rnr.methods.settings import settings_for_method, settings_from_mapping

LPI = np.diag([1.0, 1.0, -1.0])  # the converted images' direction (rnr/data/dirlab_reader.py)


def _t00(case_dir: Path) -> sitk.Image:
    return sitk.ReadImage(str(case_dir / "T00.nii.gz"))


def _field_image(case_dir: Path, vectors_mm: np.ndarray) -> sitk.Image:
    """A vector image (nz, ny, nx, 3) of world-mm vectors with T00's geometry."""
    image = sitk.GetImageFromArray(np.asarray(vectors_mm, dtype=np.float32), isVector=True)
    image.CopyInformation(_t00(case_dir))
    return image


def _constant(case_dir: Path, vector_mm) -> np.ndarray:
    shape = load_case(case_dir).shape_zyx
    return np.broadcast_to(np.asarray(vector_mm, dtype=np.float32), shape + (3,)).copy()


def _write(path: Path, image: sitk.Image) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))
    return path


# ------------------------------------------------------------------------------------------ conventions
def test_world_vectors_are_direction_times_spacing_times_voxels():
    spacing = (0.97, 0.97, 2.5)
    d_vox = np.array([[1.0, -2.0, 3.0], [0.5, 0.25, -4.0]])
    world = voxel_to_world_vectors(d_vox, LPI, spacing)
    # With diag(1, 1, -1) only z changes sign: a move to a larger slice number (inferior) is -z in LPS.
    np.testing.assert_allclose(world, [[0.97, -1.94, -7.5], [0.485, 0.2425, 10.0]], rtol=1e-6)
    np.testing.assert_allclose(world_to_voxel_vectors(world, LPI, spacing), d_vox, rtol=1e-6)
    rotation = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # any orthonormal direction
    np.testing.assert_allclose(
        world_to_voxel_vectors(voxel_to_world_vectors(d_vox, rotation, spacing), rotation, spacing), d_vox, rtol=1e-6
    )


def test_settings_need_a_case_placeholder():
    assert settings_for_method("field").params == FieldSettings()
    s = settings_from_mapping({"method": "field", "fields": "out/{method}/case{case}/f.nii.gz"})
    assert s.params.path(7) == Path("out/{method}/case7/f.nii.gz")  # only {case} is replaced
    with pytest.raises(SettingsError, match=r"cfg: setting 'fields' must be a path pattern containing \{case\}"):
        settings_from_mapping({"method": "field", "fields": "one.nii.gz"}, where="cfg")
    with pytest.raises(SettingsError, match="setting 'lr' belongs to method rnr/idir, not field"):
        settings_from_mapping({"method": "field", "lr": 0.1})


# ------------------------------------------------------------------------------------------ reading
def test_a_constant_field_in_mm_moves_landmarks_by_that_vector_through_register_and_evaluate(
    converted_case, tmp_path, capsys
):
    """A constant world vector (1, 2, 3) mm: every T00 landmark moves by (1/sx, 2/sy, -3/sz) voxels (z flips
    with the direction diag(1, 1, -1)); rnr register + rnr evaluate score it like any method."""
    case = load_case(converted_case)
    _write(
        tmp_path / "fields" / "case1" / "f.nii.gz", _field_image(converted_case, _constant(converted_case, [1, 2, 3]))
    )
    sx, sy, sz = case.spacing_xyz
    disp = read_field(tmp_path / "fields" / "case1" / "f.nii.gz", case)
    np.testing.assert_allclose(disp[3, 4, 5], [1 / sx, 2 / sy, -3 / sz], rtol=1e-6)

    out = tmp_path / "run"
    mask = str(converted_case / layout.MASK_PROVIDED)
    pattern = str(tmp_path / "fields" / "case{case}" / "f.nii.gz")
    argv = ["register", "--case-dir", str(converted_case), "--out", str(out), "--mask", mask, "--name", "mine"]
    assert main([*argv, "--set", "method=field", "--set", f"fields={pattern}", "--no-progress"]) == 0
    run = json.loads((out / layout.RUN_JSON).read_text())
    assert (run["method"], run["wall_s"], run["iterations"]) == ("field", 0.0, 0)
    assert run["fields_file"] == pattern.replace("{case}", "1")
    assert main(["evaluate", "--case-dir", str(converted_case), "--run-dir", str(out), "--mask", mask]) == 0
    record = json.loads((out / layout.METRICS_JSON).read_text())
    assert (record["method"], record["transform_kind"]) == ("field", "field")
    moved = case.landmarks("T00") + [1 / sx, 2 / sy, -3 / sz]
    expected = np.linalg.norm((moved - case.landmarks("T50")) * case.spacing_xyz, axis=1).mean()
    assert record["tre"]["mean_mm"] == pytest.approx(expected, abs=1e-4)
    # A constant field has det J = 1 exactly (central differences of a constant).
    assert record["folding"]["count"] == 0 and record["folding"]["min_det"] == pytest.approx(1.0, abs=1e-6)


def _bad_inputs(case_dir: Path) -> dict[str, tuple[sitk.Image, str]]:
    """name -> (image, fragment of the expected error)."""
    t00 = _t00(case_dir)
    good = _field_image(case_dir, _constant(case_dir, [1, 2, 3]))
    scalar = sitk.Image(t00.GetSize(), sitk.sitkFloat32)
    scalar.CopyInformation(t00)
    two = sitk.Image(t00.GetSize(), sitk.sitkVectorFloat32, 2)
    two.CopyInformation(t00)
    volumes = sitk.JoinSeries([sitk.Cast(scalar, sitk.sitkFloat32)] * 3)
    nx, ny, nz = t00.GetSize()
    small = sitk.Image((nx, ny, nz - 1), sitk.sitkVectorFloat32, 3)
    small.SetSpacing(t00.GetSpacing())
    small.SetDirection(t00.GetDirection())
    spacing, origin, direction = (sitk.Image(good) for _ in range(3))
    spacing.SetSpacing([s * 1.1 for s in t00.GetSpacing()])
    origin.SetOrigin((0.0, 0.0, 5.0))
    direction.SetDirection((1, 0, 0, 0, 1, 0, 0, 0, 1))
    nan = _constant(case_dir, [1, 2, 3])
    nan[2, 3, 4, 1] = np.nan
    micrometres = _constant(case_dir, [1000, 2000, 3000])
    arr = sitk.GetArrayFromImage(good)
    index = np.stack(np.meshgrid(*(np.arange(n) for n in (nx, ny, nz)), indexing="ij"), axis=-1).transpose(2, 1, 0, 3)
    positions = np.asarray(t00.GetSpacing()) * index * np.diag(LPI) + arr  # phi(x) in world mm, not phi(x) - x
    return {
        "scalar": (scalar, "found a 3-D image with 1 component(s) per voxel"),
        "two components": (two, "found a 3-D image with 2 component(s) per voxel"),
        "four-d": (volumes, "found a 4-D image with 1 component(s) per voxel (a 4-D image of three volumes"),
        "size": (small, f"found size (x, y, z) ({nx}, {ny}, {nz - 1})"),
        "spacing": (spacing, "expected a field on the T00 grid of"),
        "origin": (origin, "origin (0, 0, 5) mm"),
        "direction": (direction, "direction (1, 0, 0, 0, 1, 0, 0, 0, 1)"),
        "nan": (_field_image(case_dir, nan), "expected finite displacements (mm), found 1 NaN or infinite value"),
        "micrometres": (_field_image(case_dir, micrometres), "expected displacements in mm (ITK physical units)"),
        "positions": (_field_image(case_dir, positions), "found what looks like absolute positions phi(x)"),
    }


def test_every_wrong_field_is_one_line_naming_the_file_what_was_expected_and_found(converted_case, tmp_path):
    case = load_case(converted_case)
    for name, (image, fragment) in _bad_inputs(converted_case).items():
        # NaN needs a format that keeps it: ITK's NIfTI reader and writer turn NaN into 0.
        path = _write(tmp_path / name.replace(" ", "_") / ("f.mha" if name == "nan" else "f.nii.gz"), image)
        with pytest.raises(InputError) as info:
            read_field(path, case)
        message = str(info.value)
        assert message.startswith(f"{path}: ") and fragment in message and "\n" not in message, (name, message)


def test_a_missing_field_stops_register_naming_the_file(converted_case, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mask = str(converted_case / layout.MASK_PROVIDED)
    argv = ["register", "--case-dir", str(converted_case), "--out", str(tmp_path / "run"), "--mask", mask]
    assert main([*argv, "--set", "method=field", "--set", "fields=mine/case{case}.nii.gz", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "mine/case1.nii.gz: displacement field of case 1 not found" in err
    assert f"relative paths start in {tmp_path}" in err
    assert not (tmp_path / "run" / layout.CHECKPOINT).exists()


def test_frame_describes_the_converted_geometry(converted_case):
    frame = Frame.of(_t00(converted_case))
    np.testing.assert_allclose(frame.direction, LPI)
    assert frame.origin_xyz == (0.0, 0.0, 0.0) and frame.size_xyz == load_case(converted_case).size_xyz
