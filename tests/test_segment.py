"""Lung masks (rnr.data.segment, `rnr segment`): threshold vs the phantom's true lungs, provided masks, and the
real lungmask code path with a weights file made here (random weights of lungmask's own U-Net)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from scipy import ndimage

from rnr import layout
from rnr.cli import main as rnr_main
from rnr.data.case import load_case
from rnr.data.dirlab_reader import convert_case
from rnr.data.phantom import load_truth, write_dataset
from rnr.data.segment import (
    LUNGMASK_FILE,
    LUNGMASK_URL,
    dice,
    lungmask_lung_mask,
    lungmask_weights,
    read_mask_record,
    segment_case,
    threshold_lung_mask,
)
from rnr.io import InputError, array_from_image, read_image, write_image

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


# -- provided masks: orientation (through `rnr convert` and `rnr segment`) ---------------------------------
def _user_mask(path: Path, array_zyx: np.ndarray, spacing_xyz, direction=None, origin=None) -> Path:
    """Write a user's Masks/ file (replacing the .mhd pair) with the given direction and origin."""
    for old in path.parent.glob(f"{path.stem}.*"):
        old.unlink()
    image = sitk.GetImageFromArray(np.ascontiguousarray(array_zyx.astype(np.uint8)))
    image.SetSpacing(tuple(float(s) for s in spacing_xyz))
    if direction is not None:
        image.SetDirection(tuple(float(v) for v in np.asarray(direction, dtype=float).ravel()))
    if origin is not None:
        image.SetOrigin(tuple(float(v) for v in origin))
    sitk.WriteImage(image, str(path))
    return path


def _mask_cases(truth: np.ndarray, spacing):
    """name -> (array z,y,x, spacing, direction, origin, accepted, note fragment)."""
    sx, sy, sz = spacing
    nz = truth.shape[0]
    lps_origin = (0.0, 0.0, -(nz - 1) * sz)  # what SimpleITK's DICOMOrient(T00, "LPS") writes
    swap = [[0, 1, 0], [1, 0, 0], [0, 0, -1]]  # T00's direction with x and y exchanged
    return {
        # The original RNR README: lungmask on the raw image as loaded, saved with an identity direction.
        "raw order, identity direction": (truth, spacing, None, None, True, "identity direction"),
        "raw order, T00's direction": (truth, spacing, np.diag([1, 1, -1]), None, True, "as T00's"),
        "x and y flipped, direction diag(-1, -1, -1)": (
            truth[:, ::-1, ::-1],
            spacing,
            np.diag([-1, -1, -1]),
            None,
            True,
            "flipped along x, y",
        ),
        "x and y exchanged, direction says so": (
            truth.transpose(0, 2, 1),
            (sy, sx, sz),
            swap,
            None,
            True,
            "axes (x, y, z) taken from the mask's (y, x, z)",
        ),
        # Made on a z-flipped (LPS-ordered) copy: identity direction, the flipped content.
        "z-flipped, identity direction (LPS tool)": (truth[::-1], spacing, None, lps_origin, False, None),
        # Flipped content with a direction of -1 on z, as the converter's own images carry.
        "z-flipped, direction diag(1, 1, -1)": (truth[::-1], spacing, np.diag([1, 1, -1]), None, False, None),
    }


MASK_CASE_NAMES = list(_mask_cases(np.zeros((2, 2, 2), bool), (1.0, 1.0, 1.0)))


@pytest.mark.parametrize("name", MASK_CASE_NAMES)
def test_provided_mask_orientation(name, phantom_dataset, tmp_path):
    from reliability_helpers import copy_tree, error_line, files_in, mask_file, rnr

    dataset = copy_tree(phantom_dataset, tmp_path / "source")
    truth = load_truth(dataset, 1).mask_T00
    spacing = load_case(convert_case(dataset, 1, tmp_path / "plain")).spacing_xyz
    array, mask_spacing, direction, origin, accepted, note = _mask_cases(truth, spacing)[name]
    path = _user_mask(mask_file(dataset, 1), array, mask_spacing, direction, origin)
    out = tmp_path / "case1"
    result = rnr("convert", "--dataset", "dirlab", "--source", dataset, "--case", "1", "--out", out)
    if not accepted:
        line = error_line(result, "convert")
        assert str(path) in line and "the mask fits T00 only flipped along z" in line, line
        assert "% of its voxels are below -500 HU in T00 as given" in line
        assert files_in(out) == []
        return
    assert result.code == 0, result.text
    case = load_case(out)
    assert note in case.info["sources"]["mask_orientation"]
    segmented = rnr("segment", "--case-dir", out, "--method", "provided")
    assert segmented.code == 0, segmented.text
    assert np.array_equal(_written_mask(out / layout.MASK_T00), truth)
    assert f"provided mask orientation: {case.info['sources']['mask_orientation']}" in segmented.out
    record = json.loads((out / "mask_T00.json").read_text())
    # The phantom lung is acquired like 4DCT (vessels, partial volume over 11 mm slices at the test scale):
    # about 93 % of a true lung mask lies below -500 HU, as in real CT; the acceptance threshold is 80 %.
    assert record["method"] == "provided" and record["air_fraction"] > 0.9


def test_oblique_mask_is_refused_naming_both_directions(phantom_dataset, tmp_path):
    from reliability_helpers import copy_tree, error_line, files_in, mask_file, rnr

    dataset = copy_tree(phantom_dataset, tmp_path / "source")
    truth = load_truth(dataset, 1).mask_T00
    spacing = load_case(convert_case(dataset, 1, tmp_path / "plain")).spacing_xyz
    c, s = np.cos(np.pi / 6), np.sin(np.pi / 6)
    path = _user_mask(mask_file(dataset, 1), truth, spacing, [[c, -s, 0], [s, c, 0], [0, 0, 1]])
    out = tmp_path / "case1"
    line = error_line(
        rnr("convert", "--dataset", "dirlab", "--source", dataset, "--case", "1", "--out", out), "convert"
    )
    assert str(path) in line
    assert "T00's diag(1, 1, -1)" in line and "found [0.866025, -0.5, 0; 0.5, 0.866025, 0; 0, 0, 1] (oblique)" in line
    assert files_in(out) == []


# -- every mask: content -----------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["provided", "threshold"])
def test_mask_figures_recorded_and_printed(method, phantom, tmp_path):
    from reliability_helpers import rnr

    case_dir = shutil.copytree(phantom[1], tmp_path / "case1")
    result = rnr("segment", "--case-dir", case_dir, "--method", method)
    assert result.code == 0, result.text
    record = json.loads((case_dir / "mask_T00.json").read_text())
    assert record["method"] == method and record["mask"] == layout.MASK_T00
    assert record["air_fraction"] >= 0.9 and 1.5 < record["volume_l"] < 2.5
    assert record["two_largest_fraction"] > 0.99 and record["n_components"] >= 1
    assert record["thresholds"] == {
        "min_air_fraction": 0.8,
        "air_hu": -500.0,
        "min_volume_l": 0.5,
        "min_two_largest_fraction": 0.9,
    }
    assert f"{record['air_fraction']:.1%} of its voxels below -500 HU in T00" in result.out
    assert read_mask_record(case_dir / layout.MASK_T00) == record


def _not_lung(truth: np.ndarray, hu: np.ndarray, kind: str) -> np.ndarray:
    if kind == "too small":
        inside = np.argwhere(ndimage.binary_erosion(truth, iterations=2))
        z, y, x = (int(v) for v in inside[len(inside) // 2])
        mask = np.zeros_like(truth)
        mask[z - 1 : z + 2, y - 1 : y + 2, x - 1 : x + 2] = True
        return mask & truth
    if kind == "soft tissue":  # the body around the lungs
        return (hu > -200) & ~truth
    if kind == "fragmented":  # every other slice: each slice its own component
        mask = truth.copy()
        mask[1::2] = False
        return mask
    if kind == "upside down":
        return truth[::-1].copy()
    raise ValueError(kind)


@pytest.mark.parametrize(
    ("kind", "fragment"),
    [
        ("too small", r"0\.0\d L"),
        ("soft tissue", r"found \d\.\d% of its voxels below -500 HU"),
        ("fragmented", r"\d+ connected component\(s\) \(\d\d?\.\d% of it in the two largest\)"),
        ("upside down", r"flipped along z it would be 9\d\.\d% air-like: the mask is upside down relative to T00"),
    ],
)
def test_segment_refuses_a_mask_that_is_no_lung(kind, fragment, phantom, tmp_path):
    """`rnr segment --method provided` on a mask_provided.nii.gz that lies on the grid but holds no lung:
    exit 2, one line naming the file and the figures, nothing written."""
    import re

    from reliability_helpers import error_line, files_in, rnr

    case_dir = shutil.copytree(phantom[1], tmp_path / "case1")
    case = load_case(case_dir)
    truth = load_truth(phantom["dataset"], 1).mask_T00
    provided = case_dir / layout.MASK_PROVIDED
    t00 = read_image(case.image_path("T00"))
    image = sitk.GetImageFromArray(_not_lung(truth, case.image("T00"), kind).astype(np.uint8))
    image.CopyInformation(t00)
    write_image(provided, image)
    before = files_in(case_dir)
    result = rnr("segment", "--case-dir", case_dir, "--method", "provided")
    line = error_line(result, "segment")
    assert result.code == 2
    assert f"{provided}: the provided mask does not look like a lung mask: expected at least 80% of its voxels" in line
    assert re.search(fragment, line), line
    assert files_in(case_dir) == before  # no mask_T00.nii.gz, no mask_T00.json


@pytest.mark.slow
def test_lungmask_random_weights_mask_is_refused(random_weights, tmp_path):
    """lungmask with the test's random weights marks the body's bounding box: the content check refuses it
    (measured on the phantom at scale 0.5: 41 % air-like, 8.3 L) and nothing is written."""
    from reliability_helpers import error_line, files_in, rnr

    dataset = write_dataset(tmp_path / "source", cases=[2], scale=0.5)
    case_dir = convert_case(dataset, 2, tmp_path / "case2")
    before = files_in(case_dir)
    result = rnr(
        "segment", "--case-dir", case_dir, "--method", "lungmask", "--weights", random_weights, "--no-download"
    )
    line = error_line(result, "segment")
    assert result.code == 2
    assert f"{case_dir / 'T00.nii.gz'}: the lungmask mask does not look like a lung mask" in line, line
    assert "% of its voxels below -500 HU in T00" in line
    assert files_in(case_dir) == before


def test_oriented_mask_undoes_every_axis_permutation_and_flip():
    """An asymmetric volume on the converter's grid, reoriented physically by SimpleITK to each of the 48
    orientation codes: oriented_mask brings each back voxel for voxel. The one exception is LPS, whose
    direction is the identity: such a mask is taken in raw order (the README's convention) and the content
    check decides instead."""
    import itertools

    from rnr.data.case import oriented_mask
    from rnr.data.dirlab_reader import DIRECTION

    rng = np.random.default_rng(0)
    array = rng.random((5, 6, 7)) > 0.5
    spacing = (1.0, 2.0, 3.0)
    image = sitk.GetImageFromArray(array.astype(np.uint8))
    image.SetSpacing(spacing)
    image.SetDirection(DIRECTION)
    codes = [
        "".join(letters[i] for letters, i in zip(perm, flips, strict=True))
        for perm in itertools.permutations(["RL", "AP", "SI"])
        for flips in itertools.product((0, 1), repeat=3)
    ]
    assert len(codes) == 48
    for code in codes:
        moved = sitk.DICOMOrient(image, code)
        mask, note = oriented_mask(moved, DIRECTION, (7, 6, 5), spacing, f"mask_{code}")
        if code == "LPS":
            assert "identity direction" in note and np.array_equal(mask, array[::-1])
        else:
            assert np.array_equal(mask, array), (code, note)
