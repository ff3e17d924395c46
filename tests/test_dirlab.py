"""DIR-Lab reader (rnr.data.dirlab_reader): geometry table, tolerant file finding, raw images, landmark files.

Every failure mode gets a clearly wrong input and must raise InputError naming the file, what was expected
and what was found. Small fake cases use a geometry.json (12 x 10 x 8 voxels); one test reads an image at
the real DIR-Lab case-1 geometry (256 x 256 x 94, 12 MB).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from rnr import coords, layout
from rnr.data import DATASETS, phantom
from rnr.data import dirlab_reader as dirlab
from rnr.data.dirlab import NO_REGISTRATION_TRE_MM
from rnr.io import InputError

SIZE = (12, 10, 8)  # x, y, z
SPACING = (1.5, 1.25, 2.5)

# rnr/DATA.md, "The ten cases": the test expectation for the built-in table.
DIRLAB_MD = {
    1: ((256, 256, 94), (0.97, 0.97, 2.5)),
    2: ((256, 256, 112), (1.16, 1.16, 2.5)),
    3: ((256, 256, 104), (1.15, 1.15, 2.5)),
    4: ((256, 256, 99), (1.13, 1.13, 2.5)),
    5: ((256, 256, 106), (1.10, 1.10, 2.5)),
    6: ((512, 512, 128), (0.97, 0.97, 2.5)),
    7: ((512, 512, 136), (0.97, 0.97, 2.5)),
    8: ((512, 512, 128), (0.97, 0.97, 2.5)),
    9: ((512, 512, 128), (0.97, 0.97, 2.5)),
    10: ((512, 512, 120), (0.97, 0.97, 2.5)),
}


# -- helpers: a tiny fake DIR-Lab dataset ------------------------------------------------------------------
def _hu_volume(size=SIZE) -> np.ndarray:
    """(z, y, x) HU: air around a soft-tissue block holding an air-filled 'lung'."""
    nx, ny, nz = size
    hu = np.full((nz, ny, nx), -1000, dtype=np.int16)
    hu[1:-1, 2:-2, 2:-2] = 40
    hu[2:-2, 3:-3, 3:-3] = -850
    return hu


def _write_raw(path: Path, hu: np.ndarray, offset: int = dirlab.HU_OFFSET, dtype: str = "<i2") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    (hu.astype(np.int32) + offset).astype(dtype).tofile(path)
    return path


def _landmark_text(points: np.ndarray, style: str = "tabs") -> str:
    if style == "tabs":
        return "".join(f"{x:3d}\t{y:3d}\t{z:3d}\t\r\n" for x, y, z in points)
    return "".join(f"{x} {y} {z}\r\n" for x, y, z in points)


def _points(n: int, seed: int = 0, size=SIZE) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(1, s + 1, n) for s in size], axis=1)


def _write_geometry(root: Path, cases, size=SIZE, spacing=SPACING) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "geometry.json").write_text(
        json.dumps({"cases": {str(c): {"size_xyz": list(size), "spacing_xyz": list(spacing)} for c in cases}})
    )


def make_case(
    root: Path,
    case: int = 1,
    folder: str | None = None,
    image: str | None = None,
    landmarks: str | None = None,
    phases=layout.PHASES,
    sampled: bool = False,
) -> Path:
    """A fake case in ``root`` using the phantom's (= real DIR-Lab) naming unless names are given.
    ``image``/``landmarks`` are templates with ``{p}`` for the phase (paths relative to the case folder)."""
    _write_geometry(root, [case])
    case_dir = root / (folder or phantom.case_folder_name(case))
    for p in phases:
        name = image.format(p=p) if image else f"Images/{phantom.image_file_name(case, p)}"
        _write_raw(case_dir / name, _hu_volume())
    for k, p in enumerate(("T00", "T50")):
        name = landmarks.format(p=p) if landmarks else phantom.landmark_file_path(case, p)
        (case_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (case_dir / name).write_text(_landmark_text(_points(300, k)))
    if sampled:
        for k, p in enumerate(layout.PHASES):
            path = case_dir / phantom.sampled4d_file_path(case, p)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(_landmark_text(_points(75, 10 + k), "spaces"))
    return case_dir


# -- geometry ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", range(1, 11))
def test_geometry_table_matches_dirlab_md(case, tmp_path):
    size, spacing = DIRLAB_MD[case]
    geometry = dirlab.case_geometry(tmp_path, case)  # no geometry.json: the table
    assert geometry.size_xyz == size
    assert geometry.spacing_xyz == pytest.approx(spacing)
    assert geometry.n_bytes == size[0] * size[1] * size[2] * 2
    assert geometry.shape_zyx == (size[2], size[1], size[0])


def test_geometry_file_overrides_table_for_listed_cases_only(tmp_path):
    _write_geometry(tmp_path, [3])
    assert dirlab.case_geometry(tmp_path, 3).size_xyz == SIZE
    assert dirlab.case_geometry(tmp_path, 3).spacing_xyz == SPACING
    assert "geometry.json" in dirlab.case_geometry(tmp_path, 3).source
    assert dirlab.case_geometry(tmp_path, 4).size_xyz == DIRLAB_MD[4][0]


@pytest.mark.parametrize(
    "content",
    [
        '{"cases": {"1": {"size_xyz": [12, 10]}}}',
        "[1, 2]",
        '{"cases": {"1": 5}}',
        '{"cases": {"1": {"size_xyz": [12, 10, 8], "spacing_xyz": [1, 1, 0]}}}',
    ],
)
def test_malformed_geometry_file(content, tmp_path):
    (tmp_path / "geometry.json").write_text(content)
    with pytest.raises(InputError, match="geometry.json: .*expected"):
        dirlab.case_geometry(tmp_path, 1)


def test_unknown_case_without_geometry_entry(tmp_path):
    with pytest.raises(InputError, match="case 11 is not a DIR-Lab case"):
        dirlab.case_geometry(tmp_path, 11)


# -- finding files -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "case,folder",
    [
        (1, "Case1Pack"),
        (1, "case1pack"),
        (1, "CASE1PACK"),
        (1, "Case1"),
        (8, "Case8Deploy"),
        (8, "case8deploy"),
        (10, "Case10Pack"),
    ],
)
def test_case_folder_variants(case, folder, tmp_path):
    for other in ("Case1Pack", "Case10Pack", "Case8Pack"):  # neighbours that must not be picked
        if other.lower() not in (folder.lower(), f"case{case}pack"):
            (tmp_path / other).mkdir()
    (tmp_path / folder).mkdir(exist_ok=True)
    assert dirlab.find_case_dir(tmp_path, case).name == folder
    assert dirlab.find_case_dir(tmp_path / folder, case) == tmp_path / folder  # pointed at the case itself


def test_two_folders_for_one_case(tmp_path):
    (tmp_path / "Case8Pack").mkdir()
    (tmp_path / "Case8Deploy").mkdir()
    with pytest.raises(InputError, match="expected one folder for case 8, found 2: Case8Deploy, Case8Pack"):
        dirlab.find_case_dir(tmp_path, 8)


def test_missing_case_folder_lists_what_is_there(tmp_path):
    (tmp_path / "Case2Pack").mkdir()
    with pytest.raises(InputError, match=r"no folder for case 3: expected Case3Pack/.*folders: Case2Pack"):
        dirlab.find_case_dir(tmp_path, 3)
    with pytest.raises(InputError, match="DIR-Lab folder not found"):
        dirlab.find_case_dir(tmp_path / "nowhere", 3)


@pytest.mark.parametrize(
    "case,image,landmarks",
    [
        (1, "Images/case1_{p}_s.img", "ExtremePhases/Case1_300_{p}_xyz.txt"),
        (2, "Images/case2_{p}-ssm.img", "ExtremePhases/Case2_300_{p}_xyz.txt"),
        (2, "Images/case2_{p}-s.img", "extremephases/case2_300_{p}_xyz.txt"),
        (6, "Images/case6_{p}.img", "extremePhases/case6_dirLab300_{p}_xyz.txt"),
        (6, "images/CASE6_{p}.IMG", "extremePhases/Case6_300_{p}_xyz.txt"),
        (10, "Images/case10_{p}.img", "extremePhases/case10_dirLab300_{p}_xyz.txt"),
        (4, "case4_{p}-ssm.img", "Case4_300_{p}_xyz.txt"),  # everything flat in the case folder
    ],
)
def test_file_naming_variants(case, image, landmarks, tmp_path):
    case_dir = make_case(tmp_path, case, image=image, landmarks=landmarks, sampled=True)
    files = dirlab.find_case_files(tmp_path, case)
    assert files.case_dir == case_dir
    assert files.images == {p: case_dir / image.format(p=p) for p in layout.PHASES}
    assert files.landmarks == {p: case_dir / landmarks.format(p=p) for p in ("T00", "T50")}
    assert sorted(files.sampled4d) == list(layout.PHASES)
    assert files.mask is None


@pytest.mark.parametrize("case", range(1, 11))
def test_phantom_naming_is_found(case, tmp_path):
    """The phantom writes each case with the real DIR-Lab names; the reader must find them all."""
    case_dir = tmp_path / phantom.case_folder_name(case)
    names = [f"Images/{phantom.image_file_name(case, p)}" for p in layout.PHASES]
    names += [phantom.landmark_file_path(case, p) for p in ("T00", "T50")]
    names += [phantom.sampled4d_file_path(case, p) for p in layout.PHASES] + [phantom.mask_file_path(case)]
    for name in names:
        (case_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (case_dir / name).touch()
    files = dirlab.find_case_files(tmp_path, case)
    found = list(files.images.values()) + list(files.landmarks.values()) + list(files.sampled4d.values())
    assert sorted(found + [files.mask]) == sorted(case_dir / n for n in names)


def test_other_cases_files_are_ignored(tmp_path):
    case_dir = make_case(tmp_path, 1)
    _write_raw(case_dir / "Images" / "case10_T00.img", _hu_volume())  # case 10's file in case 1's folder
    _write_raw(case_dir / "Images" / "case1_T60_s.img", _hu_volume())  # a phase the pipeline does not use
    files = dirlab.find_case_files(tmp_path, 1)
    assert files.images["T00"].name == "case1_T00_s.img"
    assert sorted(files.images) == list(layout.PHASES)


def test_phase_present_twice_under_two_names(tmp_path):
    case_dir = make_case(tmp_path, 2)
    _write_raw(case_dir / "Images" / "case2_T00-s.img", _hu_volume())
    with pytest.raises(InputError) as info:
        dirlab.find_case_files(tmp_path, 2)
    message = str(info.value)
    assert str(case_dir) in message and "T00 found twice" in message
    assert "case2_T00-s.img" in message and "case2_T00-ssm.img" in message


def test_landmark_file_present_twice(tmp_path):
    case_dir = make_case(tmp_path, 6)
    (case_dir / "extremePhases" / "Case6_300_T50_xyz.txt").write_text(_landmark_text(_points(300)))
    with pytest.raises(InputError, match="T50 found twice.*case6_dirLab300_T50_xyz.txt"):
        dirlab.find_case_files(tmp_path, 6)


def test_missing_phase_lists_expected_and_found(tmp_path):
    case_dir = make_case(tmp_path, 1, phases=("T00", "T10", "T20", "T30", "T40"))
    with pytest.raises(InputError) as info:
        dirlab.find_case_files(tmp_path, 1)
    message = str(info.value)
    assert str(case_dir) in message
    assert "missing image file(s) for phase(s) T50" in message
    assert "case1_T50_s.img" in message  # what was expected
    assert "T00: Images/case1_T00_s.img" in message and "T40" in message  # what was found


def test_partial_intermediate_phases(tmp_path):
    make_case(tmp_path, 1, phases=("T00", "T10", "T20", "T40", "T50"))
    with pytest.raises(InputError, match="phase.s. T30 .T10..T40 must be all present or all absent"):
        dirlab.find_case_files(tmp_path, 1)


def test_extreme_phases_only_is_fine(tmp_path):
    make_case(tmp_path, 1, phases=("T00", "T50"))
    assert sorted(dirlab.find_case_files(tmp_path, 1).images) == ["T00", "T50"]


def test_missing_landmark_file(tmp_path):
    case_dir = make_case(tmp_path, 3)
    (case_dir / phantom.landmark_file_path(3, "T50")).unlink()
    with pytest.raises(InputError, match=r"missing landmarks file.*T50.*Case3_300_T50_xyz.txt.*found T00"):
        dirlab.find_case_files(tmp_path, 3)


def test_incomplete_sampled4d(tmp_path):
    case_dir = make_case(tmp_path, 1, sampled=True)
    (case_dir / phantom.sampled4d_file_path(1, "T20")).unlink()
    with pytest.raises(InputError, match="missing sampled4d file.*T20"):
        dirlab.find_case_files(tmp_path, 1)


# -- raw images --------------------------------------------------------------------------------------------
def _geometry() -> dirlab.CaseGeometry:
    return dirlab.CaseGeometry(SIZE, SPACING, source="test")


def test_raw_image_axis_order_and_hu(tmp_path):
    hu = _hu_volume()
    hu[2, 1, 3] = 500  # z=2, y=1, x=3
    path = _write_raw(tmp_path / "a.img", hu)
    # On disk x runs fastest: byte offset of voxel (x=3, y=1, z=2) is 2 * (3 + 12 * (1 + 10 * 2)).
    raw = path.read_bytes()
    offset = 2 * (3 + SIZE[0] * (1 + SIZE[1] * 2))
    assert int.from_bytes(raw[offset : offset + 2], "little") == 500 + 1024
    out = dirlab.read_raw_image(path, _geometry())
    assert out.dtype == np.int16 and out.shape == (8, 10, 12)
    assert out[2, 1, 3] == 500
    assert np.array_equal(out, hu)


def test_image_one_byte_short(tmp_path):
    path = _write_raw(tmp_path / "a.img", _hu_volume())
    path.write_bytes(path.read_bytes()[:-1])
    expected = 12 * 10 * 8 * 2
    with pytest.raises(InputError) as info:
        dirlab.read_raw_image(path, _geometry())
    message = str(info.value)
    assert str(path) in message and f"expected {expected} bytes" in message
    assert f"found {expected - 1} bytes" in message


def test_image_one_slice_long(tmp_path):
    path = _write_raw(tmp_path / "a.img", _hu_volume(size=(12, 10, 9)))
    with pytest.raises(InputError, match=r"expected 1920 bytes.*found 2160 bytes = 9 slices of 12x10 inst"):
        dirlab.read_raw_image(path, _geometry())


def test_image_already_in_hu(tmp_path):
    path = _write_raw(tmp_path / "a.img", _hu_volume(), offset=0)
    with pytest.raises(
        InputError,
        match=r"a.img: expected air near -1000 HU.*found an air peak at "
        r"-20\d\d HU.*HU already",
    ):
        dirlab.read_raw_image(path, _geometry())


def test_image_big_endian(tmp_path):
    path = _write_raw(tmp_path / "a.img", _hu_volume(), dtype=">i2")
    with pytest.raises(InputError, match="a.img: expected air near -1000 HU.*big-endian"):
        dirlab.read_raw_image(path, _geometry())


def test_image_without_air(tmp_path):
    path = _write_raw(tmp_path / "a.img", np.full((8, 10, 12), 40, dtype=np.int16))
    with pytest.raises(InputError, match="found no voxel at or below -500 HU"):
        dirlab.read_raw_image(path, _geometry())


def test_image_at_real_dirlab_geometry(tmp_path):
    """Case 1 at DIR-Lab's own size (256 x 256 x 94, 12.3 MB) through the table lookup."""
    geometry = dirlab.case_geometry(tmp_path, 1)
    hu = _hu_volume(geometry.size_xyz)
    hu[93, 0, 255] = 700  # last slice, first row, last column
    path = _write_raw(tmp_path / "case1_T00_s.img", hu)
    assert path.stat().st_size == 12_320_768
    out = dirlab.read_raw_image(path, geometry)
    assert out.shape == (94, 256, 256) and out[93, 0, 255] == 700 and out[0, 0, 0] == -1000


# -- landmark files ----------------------------------------------------------------------------------------
def _write_text(tmp_path: Path, text: str, name: str = "lm.txt") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode())
    return path


@pytest.mark.parametrize("style", ["tabs", "spaces", "lf", "blank-lines"])
def test_landmark_formats(style, tmp_path):
    pts = _points(300)
    text = {
        "tabs": _landmark_text(pts, "tabs"),
        "spaces": _landmark_text(pts, "spaces"),
        "lf": "".join(f"{x}\t{y}\t{z}\n" for x, y, z in pts),
        "blank-lines": "\r\n" + _landmark_text(pts, "tabs") + "\r\n  \r\n",
    }[style]
    out = dirlab.read_landmarks(_write_text(tmp_path, text), SIZE)
    assert out.dtype == np.int64 and np.array_equal(out, pts)


def test_landmarks_299_rows(tmp_path):
    path = _write_text(tmp_path, _landmark_text(_points(299)))
    with pytest.raises(InputError, match=r"lm.txt: expected 300 landmark rows, found 299"):
        dirlab.read_landmarks(path, SIZE)


def test_sampled4d_row_count(tmp_path):
    path = _write_text(tmp_path, _landmark_text(_points(75)))
    assert dirlab.read_landmarks(path, SIZE, dirlab.N_SAMPLED4D).shape == (75, 3)
    with pytest.raises(InputError, match="expected 300 landmark rows, found 75"):
        dirlab.read_landmarks(path, SIZE)


@pytest.mark.parametrize(
    "bad,pattern",
    [
        ("8a", r"line 5: expected an integer voxel index, found '8a'"),
        ("4.5", r"line 5: expected an integer voxel index, found '4.5'"),
        ("nan", r"line 5: expected an integer voxel index, found 'nan'"),
    ],
)
def test_landmark_non_integer_field(bad, pattern, tmp_path):
    lines = _landmark_text(_points(300)).splitlines(keepends=True)
    lines[4] = f"{bad}\t 3\t 4\t\r\n"
    with pytest.raises(InputError, match=pattern):
        dirlab.read_landmarks(_write_text(tmp_path, "".join(lines)), SIZE)


def test_landmark_integral_float_is_accepted(tmp_path):
    pts = _points(300)
    text = "".join(f"{x}.0 {y}.0 {z}.0\r\n" for x, y, z in pts)
    assert np.array_equal(dirlab.read_landmarks(_write_text(tmp_path, text), SIZE), pts)


def test_landmark_wrong_column_count(tmp_path):
    lines = _landmark_text(_points(300)).splitlines(keepends=True)
    lines[9] = "1 2\r\n"
    with pytest.raises(InputError, match=r"line 10: expected 3 values \(x y z\), found 2: '1 2'"):
        dirlab.read_landmarks(_write_text(tmp_path, "".join(lines)), SIZE)


@pytest.mark.parametrize("row,hint", [((13, 1, 1), ""), ((1, 11, 1), ""), ((1, 1, 9), ""), ((0, 5, 5), "0-based")])
def test_landmark_outside_volume(row, hint, tmp_path):
    pts = _points(300)
    pts[41] = row
    with pytest.raises(InputError) as info:
        dirlab.read_landmarks(_write_text(tmp_path, _landmark_text(pts)), SIZE)
    message = str(info.value)
    assert "lm.txt: row 42" in message and "outside the volume" in message and "1..(12, 10, 8)" in message
    assert hint in message


def test_landmark_binary_file(tmp_path):
    path = tmp_path / "lm.txt"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(InputError, match="found binary data"):
        dirlab.read_landmarks(path, SIZE)


def test_identity_tre_by_hand(tmp_path):
    """Reader + coords reproduce a hand computation of the identity TRE (mean, std with ddof = 1)."""
    t00 = _points(300, seed=3, size=(8, 6, 5))
    t50 = t00.copy()
    t50[:100, 2] += 1  # 1 slice    * 2.5 mm  = 2.5 mm
    t50[100:200, 0] += 2  # 2 columns * 1.5 mm  = 3.0 mm
    t50[200:, 1] += 4  # 4 rows     * 1.25 mm = 5.0 mm
    p0 = dirlab.read_landmarks(_write_text(tmp_path, _landmark_text(t00), "t00.txt"), SIZE)
    p1 = dirlab.read_landmarks(_write_text(tmp_path, _landmark_text(t50), "t50.txt"), SIZE)
    mm0 = coords.voxel_to_mm(coords.from_dirlab_index(p0), SPACING)
    mm1 = coords.voxel_to_mm(coords.from_dirlab_index(p1), SPACING)
    dist = np.linalg.norm(mm1 - mm0, axis=1)
    # By hand: mean (2.5 + 3.0 + 5.0) / 3 = 3.5; squared deviations 100 * (1 + 0.25 + 2.25) = 350 over 299.
    assert dist.mean() == pytest.approx(3.5, abs=1e-12)
    assert dist.std(ddof=1) == pytest.approx(math.sqrt(350 / 299), abs=1e-12)
    # mm columns of the converted-case table are (index - 1) * spacing.
    frame = layout.landmark_table(coords.from_dirlab_index(p1), SPACING)
    assert list(frame.columns) == list(layout.LANDMARK_COLUMNS)
    assert np.allclose(frame[["x_mm", "y_mm", "z_mm"]].to_numpy(), (t50 - 1) * np.asarray(SPACING))
    assert np.array_equal(frame[["x_vox", "y_vox", "z_vox"]].to_numpy(), t50 - 1)


# rnr/DATA.md, "No-registration TRE" (rnr.data.dirlab.NO_REGISTRATION_TRE_MM: mean, std with ddof = 1, mm):
# reproduced exactly from real data only.
REAL_DIRLAB = os.environ.get("RNR_DIRLAB_DIR")


@pytest.mark.skipif(not REAL_DIRLAB, reason="set RNR_DIRLAB_DIR to a folder holding the real DIR-Lab cases")
@pytest.mark.parametrize("case", DATASETS["dirlab"].cases)
def test_real_dirlab_identity_tre(case):
    """On the real data, reader + coords reproduce rnr/DATA.md's table to its two decimals. A case the reader
    cannot read fails (a broken reader must not turn into ten skips)."""
    root = Path(REAL_DIRLAB)
    files = dirlab.find_case_files(root, case)
    size = dirlab.case_geometry(root, case).size_xyz
    spacing = dirlab.case_geometry(root, case).spacing_xyz
    p0, p1 = (dirlab.read_landmarks(files.landmarks[p], size) for p in ("T00", "T50"))
    dist = np.linalg.norm(
        coords.voxel_to_mm(coords.from_dirlab_index(p1), spacing)
        - coords.voxel_to_mm(coords.from_dirlab_index(p0), spacing),
        axis=1,
    )
    mean, std = NO_REGISTRATION_TRE_MM[case]
    assert dist.mean() == pytest.approx(mean, abs=0.0051)  # equal to the table's two decimals
    assert dist.std(ddof=1) == pytest.approx(std, abs=0.0051)
