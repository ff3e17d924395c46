"""`rnr convert` / rnr.data.dirlab_reader.convert_case on the phantom: NIfTI volumes, landmark CSVs, provided masks,
orientation, and failures that must leave no complete-looking output."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from rnr import layout
from rnr.cli import main as rnr_main
from rnr.data import dirlab_reader as dirlab
from rnr.data import phantom
from rnr.data.case import load_case
from rnr.io import InputError


@pytest.fixture
def dataset_copy(phantom_dataset, tmp_path) -> Path:
    """A private copy of the session phantom (cases 1 and 2) that a test may damage."""
    return Path(shutil.copytree(phantom_dataset, tmp_path / "source"))


def _raw_hu(dataset: Path, case: int, phase: str, size_xyz) -> np.ndarray:
    """The phantom's raw file read independently of rnr.data.dirlab_reader: (z, y, x) HU."""
    path = dataset / phantom.case_folder_name(case) / "Images" / phantom.image_file_name(case, phase)
    nx, ny, nz = size_xyz
    return np.fromfile(path, dtype="<i2").reshape(nz, ny, nx).astype(np.int32) - 1024


def test_converted_case_round_trip(converted_case, phantom_dataset):
    case = load_case(converted_case)
    truth = phantom.load_truth(phantom_dataset, 1)
    assert case.case == 1
    assert case.size_xyz == truth.size_xyz == phantom.geometry(1, 0.5)[0]
    assert case.spacing_xyz == pytest.approx(truth.spacing_xyz)
    assert case.phases == layout.PHASES and case.has_intermediate
    for phase in layout.PHASES:
        assert np.array_equal(case.image(phase), _raw_hu(phantom_dataset, 1, phase, case.size_xyz))
    for phase in ("T00", "T50"):
        assert np.array_equal(case.landmarks(phase), np.rint(truth.landmarks[phase]))
    for phase in layout.PHASES:
        assert np.array_equal(case.sampled4d(phase), np.rint(truth.landmarks[phase][truth.sampled4d_index]))
    assert np.array_equal(case.load_mask(case.provided_mask_path), truth.mask_T00)


def test_nifti_opens_in_simpleitk_with_spacing_and_mm_columns(converted_case, phantom_dataset):
    info = load_case(converted_case).info
    spacing = np.asarray(info["spacing_xyz"])
    for phase in layout.PHASES:
        image = sitk.ReadImage(str(converted_case / layout.image_name(phase)))
        assert image.GetPixelID() == sitk.sitkInt16
        assert image.GetSize() == tuple(info["size_xyz"])
        assert np.allclose(image.GetSpacing(), spacing, atol=1e-5)
    case_dir = phantom_dataset / phantom.case_folder_name(1)
    files = {p: case_dir / phantom.landmark_file_path(1, p) for p in ("T00", "T50")}
    files.update({f"4D{p}": case_dir / phantom.sampled4d_file_path(1, p) for p in layout.PHASES})
    for key, source in files.items():
        index1 = np.loadtxt(source)  # DIR-Lab 1-based (x, y, z), read independently of rnr.data.dirlab_reader
        name = layout.landmarks_name(key) if key in ("T00", "T50") else layout.sampled4d_name(key[2:])
        table = pd.read_csv(converted_case / name)
        assert list(table.columns) == list(layout.LANDMARK_COLUMNS)
        assert len(table) == (300 if key in ("T00", "T50") else 75)
        assert np.allclose(table[["x_mm", "y_mm", "z_mm"]].to_numpy(), (index1 - 1) * spacing, atol=1e-9)
        assert np.array_equal(table[["x_vox", "y_vox", "z_vox"]].to_numpy(), index1 - 1)


def test_orientation_patient_upright(converted_case, phantom_dataset):
    """Direction diag(1, 1, -1): slice 0 (DIR-Lab slice 1) is the most superior in LPS world coordinates,
    x runs to the patient's left and y to posterior; reorienting to LPS (what lungmask does) only flips z."""
    image = sitk.ReadImage(str(converted_case / "T00.nii.gz"))
    assert image.GetDirection() == pytest.approx(dirlab.DIRECTION)
    assert sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(image.GetDirection()) == "LPI"
    nx, ny, nz = image.GetSize()
    top = image.TransformIndexToPhysicalPoint((0, 0, 0))
    assert top[2] > image.TransformIndexToPhysicalPoint((0, 0, nz - 1))[2]  # +z (LPS) = superior
    assert top[0] < image.TransformIndexToPhysicalPoint((nx - 1, 0, 0))[0]  # +x = left
    assert top[1] < image.TransformIndexToPhysicalPoint((0, ny - 1, 0))[1]  # +y = posterior
    array = sitk.GetArrayFromImage(image)
    lps = sitk.GetArrayFromImage(sitk.DICOMOrient(image, "LPS"))
    assert np.array_equal(lps, array[::-1])
    # Anatomy agrees: the lung apex is near slice 0, the spine posterior (large y), the heart on the left.
    truth = phantom.load_truth(phantom_dataset, 1)
    area = truth.mask_T00.sum(axis=(1, 2))
    assert area[: nz // 4].sum() < area[nz // 2 :].sum()
    bone_y = np.nonzero((array > 300).any(axis=(0, 2)))[0]
    assert bone_y.max() > 0.75 * ny  # vertebrae behind the lungs
    case = load_case(converted_case)
    assert case.info["direction"] == list(dirlab.DIRECTION) and case.info["origin"] == [0.0, 0.0, 0.0]


def test_case_json_contract(converted_case):
    info = load_case(converted_case).info
    for key in ("case", "size_xyz", "spacing_xyz", "direction", "origin", "phases", "sources"):
        assert key in info
    assert info["sources"]["images"]["T00"] == "Images/case1_T00_s.img"
    assert info["sources"]["geometry"].endswith("geometry.json")
    assert info["has_provided_mask"] and info["has_sampled4d"]


def test_without_masks_and_sampled4d(dataset_copy, tmp_path):
    out = dirlab.convert_case(dataset_copy, 2, tmp_path / "case2")
    assert (out / layout.MASK_PROVIDED).is_file() and (out / layout.sampled4d_name("T30")).is_file()
    shutil.rmtree(dataset_copy / "Case2Pack" / "Masks")
    shutil.rmtree(dataset_copy / "Case2Pack" / "Sampled4D")
    dirlab.convert_case(dataset_copy, 2, out)  # into the same folder: stale outputs must go
    case = load_case(out)
    assert case.provided_mask_path is None and case.sampled4d("T00") is None
    assert not list(out.glob("sampled4d_*"))
    assert not case.info["has_provided_mask"] and case.info["sources"]["mask"] is None


def test_failed_conversion_leaves_no_case_json(dataset_copy, tmp_path):
    out = dirlab.convert_case(dataset_copy, 1, tmp_path / "case1")
    assert (out / layout.CASE_JSON).is_file()
    t30 = dataset_copy / "Case1Pack" / "Images" / "case1_T30_s.img"
    t30.write_bytes(t30.read_bytes()[:-1])
    with pytest.raises(InputError, match="case1_T30_s.img: expected .* bytes"):
        dirlab.convert_case(dataset_copy, 1, out)
    assert not (out / layout.CASE_JSON).exists()
    with pytest.raises(InputError, match="case.json: file not found"):
        load_case(out)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_t00_t50_landmark_files_of_different_lengths(dataset_copy, tmp_path):
    t50 = dataset_copy / "Case1Pack" / phantom.landmark_file_path(1, "T50")
    t50.write_bytes(t50.read_bytes() + b" 10\t 10\t 10\t\r\n")
    with pytest.raises(InputError, match=r"Case1_300_T50_xyz.txt: expected 300 landmark rows, found 301"):
        dirlab.convert_case(dataset_copy, 1, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # validated before anything was written


def _write_mask(dataset: Path, case: int, array_zyx: np.ndarray, spacing) -> None:
    image = sitk.GetImageFromArray(np.ascontiguousarray(array_zyx.astype(np.uint8)))
    image.SetSpacing(tuple(float(s) for s in spacing))
    path = dataset / phantom.case_folder_name(case) / phantom.mask_file_path(case)
    for old in path.parent.iterdir():
        old.unlink()
    sitk.WriteImage(image, str(path))


def test_transposed_mask_is_rejected(dataset_copy, tmp_path):
    truth = phantom.load_truth(dataset_copy, 1)
    # Same voxel count, x and y swapped: the known silent failure.
    _write_mask(dataset_copy, 1, truth.mask_T00.transpose(0, 2, 1), truth.spacing_xyz)
    with pytest.raises(InputError) as info:
        dirlab.convert_case(dataset_copy, 1, tmp_path / "out")
    message = str(info.value)
    assert "case1_T00_mask.mhd" in message and "permuted" in message
    assert str(truth.size_xyz) in message
    assert not (tmp_path / "out" / layout.CASE_JSON).exists()


def test_wrong_size_mask_is_rejected(dataset_copy, tmp_path):
    truth = phantom.load_truth(dataset_copy, 1)
    _write_mask(dataset_copy, 1, truth.mask_T00[:-1], truth.spacing_xyz)
    with pytest.raises(InputError, match=r"case1_T00_mask.mhd: expected a 3-D mask of size .* found size"):
        dirlab.convert_case(dataset_copy, 1, tmp_path / "out")


def test_wrong_spacing_and_empty_masks_are_rejected(dataset_copy, tmp_path):
    truth = phantom.load_truth(dataset_copy, 1)
    _write_mask(dataset_copy, 1, truth.mask_T00, (1.0, 1.0, 1.0))
    with pytest.raises(InputError, match="case1_T00_mask.mhd: expected spacing"):
        dirlab.convert_case(dataset_copy, 1, tmp_path / "out")
    _write_mask(dataset_copy, 1, np.zeros_like(truth.mask_T00), truth.spacing_xyz)
    with pytest.raises(InputError, match="case1_T00_mask.mhd: expected a lung mask with non-zero voxels"):
        dirlab.convert_case(dataset_copy, 1, tmp_path / "out")


def test_phantom_write_mask_restores_provided_mask(dataset_copy, tmp_path):
    shutil.rmtree(dataset_copy / "Case2Pack" / "Masks")
    path = phantom.write_mask(dataset_copy, 2)
    assert path == dataset_copy / "Case2Pack" / "Masks" / "case2_T00_mask.mhd"
    out = dirlab.convert_case(dataset_copy, 2, tmp_path / "case2")
    assert np.array_equal(
        load_case(out).load_mask(out / layout.MASK_PROVIDED), phantom.load_truth(dataset_copy, 2).mask_T00
    )


# -- the command line --------------------------------------------------------------------------------------
def test_cli_convert(phantom_dataset, tmp_path, capsys):
    out = tmp_path / "case2"
    assert (
        rnr_main(["convert", "--dataset", "dirlab", "--source", str(phantom_dataset), "--case", "2", "--out", str(out)])
        == 0
    )
    assert "case 2:" in capsys.readouterr().out
    assert load_case(out).case == 2


def test_cli_convert_error_is_one_line(phantom_dataset, tmp_path, capsys):
    code = rnr_main(
        [
            "convert",
            "--dataset",
            "dirlab",
            "--source",
            str(phantom_dataset),
            "--case",
            "3",
            "--out",
            str(tmp_path / "x"),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rnr convert: error:") and "no folder for case 3" in err and "\n" not in err


@pytest.mark.parametrize("command", ["convert", "phantom"])
def test_cli_help(command, capsys):
    with pytest.raises(SystemExit) as info:
        rnr_main([command, "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert "Example" in text and f"rnr {command} " in text


def test_cli_phantom(tmp_path, capsys):
    assert rnr_main(["phantom", str(tmp_path / "ph"), "--cases", "2", "--scale", "0.5", "--no-masks"]) == 0
    out = capsys.readouterr().out
    assert "case 2:" in out and "identity TRE" in out
    assert "realism table" in out and "| 2 |" in out  # the realism table, as truth/summary.csv holds it
    assert (tmp_path / "ph" / "truth" / "summary.csv").is_file()
    assert (tmp_path / "ph" / "Case2Pack" / "Images" / "case2_T50-ssm.img").is_file()
    assert not (tmp_path / "ph" / "Case2Pack" / "Masks").exists()
    # Out-of-range options: one line naming the option and its range.
    for option, value, expected in (("--scale", "0.3", "[0.5, 2]"), ("--noise", "100", "[0, 60] HU")):
        with pytest.raises(SystemExit):
            rnr_main(["phantom", str(tmp_path / "ph"), option, value])
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert f"{option} must be in {expected}" in err, err
    with pytest.raises(SystemExit):
        rnr_main(["phantom", str(tmp_path / "ph"), "--cases", "11"])
