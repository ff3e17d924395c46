"""Lung masks (rnr.segment, `rnr segment`): threshold vs the phantom's true lungs, provided masks, and the
real lungmask code path with a weights file made here (random weights of lungmask's own U-Net)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from rnr import layout
from rnr.case import load_case
from rnr.cli import main as rnr_main
from rnr.dirlab import convert_case
from rnr.io import InputError, array_from_image, read_image, write_image
from rnr.phantom import load_truth, write_dataset
from rnr.segment import (
    LUNGMASK_FILE,
    LUNGMASK_URL,
    dice,
    lungmask_lung_mask,
    lungmask_weights,
    segment_case,
    threshold_lung_mask,
)

CASES = (1, 2)  # the cases of conftest's phantom_dataset


@pytest.fixture(scope="module")
def phantom(phantom_dataset, converted_case, tmp_path_factory) -> dict:
    """conftest's phantom (scale 0.5) and its converted cases: {"dataset": Path, case: case_dir}."""
    case2 = convert_case(phantom_dataset, 2, tmp_path_factory.mktemp("segment") / "case2")
    return {"dataset": phantom_dataset, 1: converted_case, 2: case2}


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory) -> Path:
    """lungmask R231 weights file: random weights of lungmask's own UNet, saved as lungmask loads them.

    The last 1x1 convolution is set to predict class 1 ("right lung") everywhere, so the output is known:
    lungmask then marks the body's bounding box in every slice (its crop), whatever the random layers do.
    """
    from lungmask.resunet import UNet

    torch.manual_seed(0)
    # The architecture lungmask.mask.get_model builds for R231 (3 classes).
    model = UNet(n_classes=3, padding=True, depth=5, up_mode="upsample", batch_norm=True, residual=False)
    with torch.no_grad():
        model.last.weight.zero_()
        model.last.bias.copy_(torch.tensor([0.0, 1.0, 0.0]))
    path = tmp_path_factory.mktemp("lungmask") / LUNGMASK_FILE
    torch.save(model.state_dict(), path)
    return path


def _written_mask(path: Path) -> np.ndarray:
    image = read_image(path)
    assert image.GetPixelID() == sitk.sitkUInt8
    arr = array_from_image(image)
    assert set(np.unique(arr)) <= {0, 1}
    return arr.astype(bool)


# -- threshold ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES)
def test_threshold_matches_phantom_lungs(phantom, case, tmp_path):
    out, used = segment_case(phantom[case], "threshold", out=tmp_path / "mask.nii.gz")
    assert used == "threshold"
    mask = _written_mask(out)
    truth = load_truth(phantom["dataset"], case).mask_T00
    assert mask.shape == truth.shape
    assert dice(mask, truth) >= 0.9
    # The written mask lies on the T00 grid (size, spacing, direction).
    t00 = read_image(Path(phantom[case]) / "T00.nii.gz")
    written = read_image(out)
    assert written.GetSize() == t00.GetSize()
    assert np.allclose(written.GetSpacing(), t00.GetSpacing())
    assert np.allclose(written.GetDirection(), t00.GetDirection())


def test_threshold_drops_outside_air_and_small_pockets():
    z, y, x = np.mgrid[0:30, 0:48, 0:64]
    hu = np.full((30, 48, 64), -1000.0)
    body = ((x - 32) / 28.0) ** 2 + ((y - 24) / 20.0) ** 2 <= 1
    hu[body] = 40.0
    right = ((x - 20) / 8.0) ** 2 + ((y - 24) / 12.0) ** 2 + ((z - 15) / 13.0) ** 2 <= 1
    left = ((x - 44) / 8.0) ** 2 + ((y - 24) / 12.0) ** 2 + ((z - 15) / 13.0) ** 2 <= 1
    pocket = (x - 32) ** 2 + (y - 38) ** 2 + (z - 15) ** 2 <= 4  # gas bubble: < 10 % of a lung
    hu[right | left] = -850.0
    hu[pocket] = -900.0
    vessel = ((x - 20) ** 2 + (y - 24) ** 2 <= 2) & (abs(z - 15) <= 8)  # inside the right lung
    hu[vessel] = 40.0
    mask = threshold_lung_mask(hu)
    assert not (mask & ~body).any()
    assert not (mask & pocket).any()
    assert mask[vessel].all()  # holes inside the lung are filled
    assert dice(mask, right | left) > 0.97


def test_threshold_rejects_volume_without_lungs():
    with pytest.raises(InputError, match="no air"):
        threshold_lung_mask(np.full((8, 16, 16), 40.0))


# -- provided / auto ---------------------------------------------------------------------------------------
def test_auto_uses_provided_mask(phantom, tmp_path):
    out, used = segment_case(phantom[1], "auto", out=tmp_path / "mask.nii.gz")
    assert used == "provided"
    assert np.array_equal(_written_mask(out), load_truth(phantom["dataset"], 1).mask_T00)


def test_default_output_is_case_mask(phantom, tmp_path):
    case_dir = shutil.copytree(phantom[1], tmp_path / "case1")
    assert rnr_main(["segment", "--case-dir", str(case_dir), "--method", "threshold"]) == 0
    mask = load_case(case_dir).load_mask()  # reads mask_T00.nii.gz, checks the grid
    assert mask.any()


def test_provided_mask_off_grid_is_rejected(phantom, tmp_path):
    case_dir = shutil.copytree(phantom[1], tmp_path / "case1")
    provided = case_dir / layout.MASK_PROVIDED
    arr = array_from_image(read_image(provided))
    # Same voxels with x and y swapped: the silent failure check_on_grid exists for.
    write_image(provided, sitk.GetImageFromArray(np.ascontiguousarray(arr.transpose(0, 2, 1))))
    with pytest.raises(InputError, match="mask_provided.nii.gz.*permuted"):
        segment_case(case_dir, "provided")
    assert not (case_dir / layout.MASK_T00).exists()


def test_provided_without_mask_is_an_error(phantom, tmp_path):
    case_dir = shutil.copytree(phantom[1], tmp_path / "case1")
    (case_dir / layout.MASK_PROVIDED).unlink()
    with pytest.raises(InputError, match="no provided mask"):
        segment_case(case_dir, "provided")
    assert rnr_main(["segment", "--case-dir", str(case_dir), "--method", "provided"]) == 2


# -- lungmask ----------------------------------------------------------------------------------------------
def test_lungmask_real_code_path_keeps_orientation(random_weights):
    """Four slices whose body shrinks along z, written with the converter's direction diag(1, 1, -1):
    lungmask reorients to LPS and back, so the mask must shrink along z in the same array order."""
    hu = np.full((4, 40, 48), -1000.0, dtype=np.float32)
    for k in range(4):
        hu[k, 5 : 32 - 4 * k, 4 : 42 - 5 * k] = 40.0
    image = sitk.GetImageFromArray(hu)
    image.SetSpacing((1.0, 1.0, 2.5))
    image.SetDirection((1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, -1.0))
    mask = lungmask_lung_mask(image, random_weights, download=False)
    assert mask.shape == hu.shape and mask.dtype == bool
    body = hu > -500
    sizes = [int(mask[k].sum()) for k in range(4)]
    assert sizes == sorted(sizes, reverse=True) and sizes[-1] > 0
    for k in range(4):
        overlap = (mask[k] & body[k]).sum() / body[k].sum()
        assert overlap > 0.8, f"slice {k}: mask covers {overlap:.2f} of the body"


@pytest.mark.slow
def test_lungmask_cli_end_to_end(random_weights, tmp_path):
    """`rnr segment --method lungmask --weights FILE` on a converted phantom case (scale 0.25, 14 slices)."""
    dataset = write_dataset(tmp_path / "source", cases=[2], scale=0.25)
    case_dir = convert_case(dataset, 2, tmp_path / "case2")
    code = rnr_main(
        [
            "segment",
            "--case-dir",
            str(case_dir),
            "--method",
            "lungmask",
            "--weights",
            str(random_weights),
            "--no-download",
        ]
    )
    assert code == 0
    case = load_case(case_dir)
    mask = case.load_mask()  # on the T00 grid, not empty
    assert mask.shape == case.shape_zyx
    assert _written_mask(Path(case_dir) / layout.MASK_T00).sum() == mask.sum()


def test_missing_weights_offline_gives_instructions(phantom, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # an empty hub cache
    with pytest.raises(InputError) as info:
        segment_case(phantom[1], "lungmask", out=tmp_path / "m.nii.gz", download=False)
    message = str(info.value)
    for expected in (
        LUNGMASK_URL,
        str(tmp_path / "torch" / "hub" / "checkpoints" / LUNGMASK_FILE),
        "--weights",
        "masks: {weights: FILE}",
    ):
        assert expected in message
    assert (
        rnr_main(
            [
                "segment",
                "--case-dir",
                str(phantom[1]),
                "--method",
                "lungmask",
                "--no-download",
                "--out",
                str(tmp_path / "m.nii.gz"),
            ]
        )
        == 2
    )
    assert not (tmp_path / "m.nii.gz").exists()


def test_failed_download_gives_instructions(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    # A closed port on this machine: the real download code fails at once, nothing leaves the machine.
    with pytest.raises(InputError, match="download failed.*--weights FILE"):
        lungmask_weights(url="http://127.0.0.1:9/unet_r231-d5d2fc3d.pth")
    assert not (tmp_path / "torch" / "hub" / "checkpoints" / LUNGMASK_FILE).exists()


def test_weights_file_checks(tmp_path):
    with pytest.raises(InputError, match="not found"):
        lungmask_weights(tmp_path / "nope.pth")
    bad = tmp_path / "bad.pth"
    torch.save({"conv.weight": torch.zeros(2, 2)}, bad)
    image = sitk.GetImageFromArray(np.full((2, 16, 16), -1000.0, dtype=np.float32))
    with pytest.raises(InputError, match="cannot load as lungmask"):
        lungmask_lung_mask(image, bad, download=False)


def test_cached_weights_are_used(random_weights, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    cached = tmp_path / "torch" / "hub" / "checkpoints" / LUNGMASK_FILE
    cached.parent.mkdir(parents=True)
    cached.symlink_to(random_weights)
    assert lungmask_weights(download=False) == cached
