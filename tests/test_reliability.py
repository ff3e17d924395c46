"""Reliability, end to end: bad inputs through the real `rnr` commands and the real Snakemake workflow.

Every case asserts the three things a user relies on: a non-zero exit, one clear message that names the file
(or config key) and says what was expected and what was found, and no output left behind by the failed
step. The reader's own unit tests (tests/test_dirlab.py, tests/test_convert.py) check the parsing rules;
here the same damage goes through the command line and the workflow. Then: a registration killed half-way
leaves no complete-looking file, and the workflow's re-run redoes exactly that job (tests/test_workflow.py
checks the complementary case: finished registrations are kept when a run is killed between jobs).

Damage is always written into a private copy (tmp_path) of conftest's session phantom (cases 1 and 2 at
scale 0.5, 68 x 55 x 16 voxels for case 1).
"""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
import yaml
from conftest import TINY
from reliability_helpers import (
    REPO,
    child_env,
    copy_tree,
    cpu_seconds,
    drop_landmark_rows,
    edit_landmark_line,
    error_line,
    files_in,
    fill_leaving,
    find_processes,
    image_file,
    job_counts,
    landmark_file,
    mask_file,
    one_error_line,
    rnr,
    rnr_command,
    small_file_system,
    snakemake,
    snakemake_command,
    wait_for_text,
    write_user_mask,
)

from rnr import layout
from rnr.data import dirlab_reader as dirlab
from rnr.data import phantom
from rnr.data.case import check_checkpoint_case, load_case
from rnr.data.dirlab_reader import HU_OFFSET
from rnr.data.segment import read_mask_record
from rnr.methods.table import load_transform

#: Snakemake's own exit code when it stops (config error, failed job).
SNAKEMAKE_FAILED = 1

RUN_OUTPUTS = (layout.CHECKPOINT, layout.LOSS_CSV, layout.WARPED_LANDMARKS, layout.RUN_JSON)
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour on a machine without CUDA")


@pytest.fixture
def dataset(phantom_dataset, tmp_path) -> Path:
    """A private copy of the session phantom that a test may damage."""
    return copy_tree(phantom_dataset, tmp_path / "source")


@pytest.fixture(scope="module")
def grid(phantom_dataset) -> dirlab.CaseGeometry:
    """Case 1's voxel grid (size (x, y, z), spacing) as the phantom's geometry.json gives it."""
    return dirlab.case_geometry(phantom_dataset, 1)


# ======================================================================== rnr convert: damaged DIR-Lab data
def _one_byte_short(d, g):
    path = image_file(d, 1, "T00")
    path.write_bytes(path.read_bytes()[:-1])
    return [path, f"expected {g.n_bytes} bytes", f"found {g.n_bytes - 1} bytes"]


def _one_slice_long(d, g):
    nx, ny, nz = g.size_xyz
    path = image_file(d, 1, "T50")
    data = path.read_bytes()
    path.write_bytes(data + data[-nx * ny * 2 :])
    return [path, f"expected {g.n_bytes} bytes", f"{nz + 1} slices of {nx}x{ny} instead of {nz}"]


def _missing_phase(d, g):
    image_file(d, 1, "T50").unlink()
    return [
        d / "Case1Pack",
        "missing image file(s) for phase(s) T50",
        "expected e.g. case1_T50_s.img",
        "found T00: Images/case1_T00_s.img",
    ]


def _missing_intermediate_phase(d, g):
    image_file(d, 1, "T30").unlink()
    return [
        d / "Case1Pack",
        "phase(s) T30",
        "T10..T40 must be all present or all absent",
        "found T00: Images/case1_T00_s.img",
    ]


def _phase_twice(d, g):
    src = image_file(d, 1, "T00")
    (src.parent / "case1_T00-ssm.img").write_bytes(src.read_bytes())  # case 2's naming style
    return [
        d / "Case1Pack",
        "phase T00 found twice",
        "Images/case1_T00-ssm.img",
        "Images/case1_T00_s.img",
        "expected exactly one file per phase",
    ]


def _landmark_file_missing(d, g):
    landmark_file(d, 1, "T50").unlink()
    return [
        d / "Case1Pack",
        "missing landmarks file(s) for phase(s) T50",
        "expected e.g. Case1_300_T50_xyz.txt",
        "found T00: ExtremePhases/Case1_300_T00_xyz.txt",
    ]


def _landmarks_299_rows(d, g):
    path = landmark_file(d, 1, "T00")
    drop_landmark_rows(path, 1)
    return [path, "expected 300 landmark rows, found 299"]


def _landmark_not_a_number(d, g):
    path = landmark_file(d, 1, "T50")
    edit_landmark_line(path, 17, " 20\tabc\t 10\t")
    return [path, "line 17", "expected an integer voxel index, found 'abc'"]


def _landmark_outside_volume(d, g):
    nx, ny, nz = g.size_xyz
    path = landmark_file(d, 1, "T00")
    edit_landmark_line(path, 5, f" 10\t 10\t {nz + 1}\t")
    return [path, "row 5", f"({10}, {10}, {nz + 1}) lies outside the volume", f"1..({nx}, {ny}, {nz})"]


def _t00_t50_different_lengths(d, g):
    path = landmark_file(d, 1, "T50")
    drop_landmark_rows(path, 2)  # T00 keeps its 300 rows
    return [path, "expected 300 landmark rows, found 298"]


def _mask_transposed(d, g):
    truth = phantom.load_truth(d, 1)
    nx, ny, nz = g.size_xyz
    # Same voxel count with x and y swapped: the silent failure of public DIR-Lab loaders.
    path = write_user_mask(mask_file(d, 1), truth.mask_T00.transpose(0, 2, 1), g.spacing_xyz)
    return [
        path,
        f"expected a 3-D mask of size (x, y, z) = {(nx, ny, nz)}",
        f"found size {(ny, nx, nz)}",
        "axes are permuted",
    ]


def _mask_wrong_size(d, g):
    truth = phantom.load_truth(d, 1)
    nx, ny, nz = g.size_xyz
    path = write_user_mask(mask_file(d, 1), truth.mask_T00[:-1], g.spacing_xyz)
    return [path, f"expected a 3-D mask of size (x, y, z) = {(nx, ny, nz)}", f"found size {(nx, ny, nz - 1)}"]


def _mask_empty(d, g):
    truth = phantom.load_truth(d, 1)
    path = write_user_mask(mask_file(d, 1), np.zeros_like(truth.mask_T00), g.spacing_xyz)
    return [path, "expected a lung mask with non-zero voxels", "found an empty mask"]


def _landmark_pair_twice(d, g):
    """Row 7 of both files made a copy of row 3: the same point pair twice (DIR-Lab row order pairs T00
    row i with T50 row i)."""
    paths = {p: landmark_file(d, 1, p) for p in ("T00", "T50")}
    rows = {p: path.read_bytes().decode().split("\r\n") for p, path in paths.items()}
    for phase, path in paths.items():
        edit_landmark_line(path, 7, rows[phase][2])
    t00 = tuple(int(v) for v in rows["T00"][2].split())
    t50 = tuple(int(v) for v in rows["T50"][2].split())
    return [
        paths["T00"],
        f"and {paths['T50'].name}: rows 3 and 7 are the same landmark pair (T00 {t00}, T50 {t50})",
        "expected 300 distinct pairs, found 1 duplicated row(s)",
    ]


def _mask_upside_down(d, g):
    """The true mask made on a z-flipped (LPS-ordered) copy of the volume and saved with an identity
    direction: right size, spacing and direction-less header, wrong anatomy."""
    truth = phantom.load_truth(d, 1)
    path = write_user_mask(mask_file(d, 1), truth.mask_T00[::-1], g.spacing_xyz)
    return [
        path,
        re.compile(
            r"the mask fits T00 only flipped along z: [67]\d\.\d% of its voxels are below -500 HU in T00 as given, "
            r"9\d\.\d% z-flipped \(expected >= 80%\)"
        ),
        "identity direction (T00's is diag(1, 1, -1))",
        "made on a z-flipped (LPS-ordered) copy of the volume",
    ]


def _dirlab_dir_missing(d, g):
    return [d / "nowhere", "DIR-Lab folder not found", "expected a folder holding Case1Pack/"]


def _dirlab_dir_empty(d, g):
    (d / "empty").mkdir()
    return [d / "empty", "no folder for case 1", "expected Case1Pack/", "found folders: none"]


DAMAGE = {
    "image one byte short": _one_byte_short,
    "image one slice long": _one_slice_long,
    "missing phase": _missing_phase,
    "missing intermediate phase": _missing_intermediate_phase,
    "phase twice under two names": _phase_twice,
    "landmark file missing": _landmark_file_missing,
    "landmarks 299 rows": _landmarks_299_rows,
    "landmark not a number": _landmark_not_a_number,
    "landmark outside volume": _landmark_outside_volume,
    "T00 and T50 of different lengths": _t00_t50_different_lengths,
    "mask transposed": _mask_transposed,
    "mask wrong size": _mask_wrong_size,
    "mask empty": _mask_empty,
    "landmark pair twice": _landmark_pair_twice,
    "mask upside down": _mask_upside_down,
    "dirlab_dir missing": _dirlab_dir_missing,
    "dirlab_dir empty": _dirlab_dir_empty,
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_convert_rejects_damaged_data(damage, dataset, grid, tmp_path):
    expected = DAMAGE[damage](dataset, grid)
    source = expected[0] if damage.startswith("dirlab_dir") else dataset
    out = tmp_path / "converted"
    line = error_line(rnr("convert", "--dataset", "dirlab", "--source", source, "--case", "1", "--out", out), "convert")
    for fragment in expected:
        if isinstance(fragment, re.Pattern):  # figures that depend on the phantom's anatomy
            assert fragment.search(line), f"{fragment.pattern!r} missing from: {line}"
        else:
            assert str(fragment) in line, f"{fragment!r} missing from: {line}"
    assert files_in(out) == [], f"a failed conversion left files: {files_in(out)}"


@pytest.mark.parametrize("damage", ["image one slice long", "landmark not a number", "mask transposed"])
def test_failed_reconversion_removes_the_earlier_one(damage, dataset, grid, tmp_path):
    """Converting again into a finished case folder and failing leaves no output (old or new) at all: a
    stale case folder would otherwise be read as if it held the new data."""
    out = tmp_path / "converted"
    assert rnr("convert", "--dataset", "dirlab", "--source", dataset, "--case", "1", "--out", out).code == 0
    (out / layout.MASK_T00).write_bytes(b"made by rnr segment")  # not convert's: must survive
    DAMAGE[damage](dataset, grid)
    error_line(rnr("convert", "--dataset", "dirlab", "--source", dataset, "--case", "1", "--out", out), "convert")
    assert files_in(out) == [layout.MASK_T00]


def test_convert_late_failure_removes_what_it_wrote(dataset, grid, tmp_path):
    """An image that only fails once it is read (T40 stored as HU, without DIR-Lab's +1024 offset: its air
    sits at -2024) is found after T00..T30 were written; those go again."""
    path = image_file(dataset, 1, "T40")
    raw = np.fromfile(path, dtype="<i2")
    (raw - HU_OFFSET).astype("<i2").tofile(path)
    out = tmp_path / "converted"
    line = error_line(
        rnr("convert", "--dataset", "dirlab", "--source", dataset, "--case", "1", "--out", out), "convert"
    )
    assert str(path) in line and "expected air near -1000 HU" in line and "seems to hold HU already" in line
    assert files_in(out) == []


@pytest.mark.parametrize("case", ["0", "11"])
def test_case_number_outside_1_to_10(case, phantom_dataset, tmp_path):
    out = tmp_path / "converted"
    result = rnr("convert", "--dataset", "dirlab", "--source", phantom_dataset, "--case", case, "--out", out)
    line = error_line(result, "convert")
    assert f"case {case} is not a DIR-Lab case (expected 1..10)" in line
    assert files_in(out) == []
    result = rnr("phantom", tmp_path / "ph", "--cases", case)
    assert result.code == 2 and f"argument --cases: invalid choice: {case}" in result.err
    assert not (tmp_path / "ph").exists()


# ========================================================================= rnr register: settings and masks
@pytest.fixture(scope="module")
def quick(converted_case) -> list[str]:
    """`rnr register` arguments of a very short registration of conftest's converted case 1 (its provided
    mask, T00 <-> T50 only, one small block)."""
    return [
        "--case-dir",
        str(converted_case),
        "--mask",
        str(converted_case / layout.MASK_PROVIDED),
        "--set",
        "intermediate=false",
        "--set",
        "n_blocks=1",
        "--set",
        "width=16",
        "--set",
        "batch_size=200",
    ]


def _register(run_dir: Path, quick: list[str], *extra: str):
    return rnr("register", *quick, "--out", run_dir, *extra)


@pytest.mark.parametrize(
    ("setting", "fragments"),
    [
        ("iterations=many", ["'iterations'", "expects int", "'many'"]),
        ("iterationz=5", ["unknown setting 'iterationz'", "valid settings for method rnr are:", "iterations"]),
        ("batch_size=mask/0", ["'batch_size'", "positive integer or 'mask/K'", "'mask/0'"]),
    ],
)
def test_register_rejects_bad_set_values(setting, fragments, quick, tmp_path):
    run_dir = tmp_path / "run"
    line = error_line(_register(run_dir, quick, "--set", "iterations=2", "--set", setting), "register")
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} missing from: {line}"
    assert files_in(run_dir) == []


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        ("iterations: many\n", ["'iterations'", "expects int", "'many'"]),
        (
            "iterations: 2\nlearning_rate: 0.1\n",
            ["unknown setting 'learning_rate'", "valid settings for method rnr are:"],
        ),
    ],
)
def test_register_rejects_bad_settings_file(content, fragments, quick, tmp_path):
    settings = tmp_path / "quick.yaml"
    settings.write_text(content)
    run_dir = tmp_path / "run"
    line = error_line(_register(run_dir, quick, "--settings", settings), "register")
    assert str(settings) in line
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} missing from: {line}"
    assert files_in(run_dir) == []


@pytest.mark.parametrize("damage", ["transposed", "wrong size", "empty"])
def test_register_rejects_bad_mask(damage, converted_case, quick, tmp_path):
    case = load_case(converted_case)
    good = case.load_mask(case.provided_mask_path)
    nx, ny, nz = case.size_xyz
    array, fragments = {
        "transposed": (good.transpose(0, 2, 1), [f"found size {(ny, nx, nz)}", "axes are permuted"]),
        "wrong size": (good[:, :, :-1], [f"found size {(nx - 1, ny, nz)}"]),
        "empty": (np.zeros_like(good), ["the lung mask is empty"]),
    }[damage]
    mask = write_user_mask(tmp_path / "my_mask.nii.gz", array, case.spacing_xyz)
    run_dir = tmp_path / "run"
    args = [a if a != str(converted_case / layout.MASK_PROVIDED) else str(mask) for a in quick]
    line = error_line(rnr("register", *args, "--out", run_dir, "--set", "iterations=2"), "register")
    assert str(mask) in line
    if damage != "empty":
        assert f"expected a 3-D mask of size (x, y, z) = {(nx, ny, nz)}" in line
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} missing from: {line}"
    assert files_in(run_dir) == []


@NO_CUDA
def test_register_on_cuda_without_cuda(quick, tmp_path):
    run_dir = tmp_path / "run"
    line = error_line(_register(run_dir, quick, "--set", "iterations=2", "--set", "device=cuda"), "register")
    assert "device='cuda'" in line and "CUDA is not available" in line
    assert files_in(run_dir) == []


# ------------------------------------------------------------------------------------ a non-finite loss
def _assert_stopped_on_non_finite_loss(line: str, name: str, iteration: int, iterations: int) -> None:
    assert f"case 1 / {name}" in line, line
    pattern = rf"loss is not finite \((nan|inf|-inf)\) at iteration {iteration} of {iterations}"
    assert re.search(pattern, line), line


def test_absurd_learning_rate_stops_with_the_iteration(quick, tmp_path):
    """lr = 1e30: the first Adam step throws the weights to ~1e30, so the loss of iteration 2 is not finite.
    An earlier complete run in the folder is removed, and nothing new is written."""
    run_dir = tmp_path / "run"
    assert _register(run_dir, quick, "--set", "iterations=2", "--name", "absurd").code == 0
    assert set(RUN_OUTPUTS) <= set(files_in(run_dir))
    line = error_line(
        _register(run_dir, quick, "--set", "iterations=20", "--set", "lr=1e30", "--name", "absurd"), "register"
    )
    _assert_stopped_on_non_finite_loss(line, "absurd", 2, 20)
    assert not set(RUN_OUTPUTS) & set(files_in(run_dir)), files_in(run_dir)
    assert not [f for f in files_in(run_dir) if f.startswith(".")]


def test_failed_reregistration_leaves_no_stale_evaluation(quick, tmp_path):
    """A run folder that was registered and evaluated, then registered again and failed: the old
    metrics.json (and figures) describe a map that is gone, so they must go too; `rnr tables` would
    otherwise publish them as this run's result."""
    run_dir = tmp_path / "run"
    assert _register(run_dir, quick, "--set", "iterations=2", "--name", "again").code == 0
    evaluated = rnr("evaluate", "--case-dir", quick[1], "--run-dir", run_dir, "--mask", quick[3], "--no-step-folding")
    assert evaluated.code == 0, evaluated.text
    assert layout.METRICS_JSON in files_in(run_dir)
    line = error_line(
        _register(run_dir, quick, "--set", "iterations=20", "--set", "lr=1e30", "--name", "again"), "register"
    )
    _assert_stopped_on_non_finite_loss(line, "again", 2, 20)
    assert files_in(run_dir) == [], f"left after the failed registration: {files_in(run_dir)}"


def test_corrupt_voxel_in_moving_image_stops_at_iteration_1(converted_case, quick, tmp_path):
    """A converted case whose T50 (the image the points are warped into) was saved as float with one garbage
    voxel (3e38) inside the lungs: the NCC's sums overflow and the loss of the very first iteration is not
    finite. (A NaN voxel cannot get this far: SimpleITK's NIfTI reader turns NaN and inf into 0.)"""
    case_dir = copy_tree(converted_case, tmp_path / "case1")
    case = load_case(case_dir)
    t50 = sitk.ReadImage(str(case.image_path("T50")))
    hu = sitk.GetArrayFromImage(t50).astype(np.float32)
    mask = case.load_mask(case.provided_mask_path)
    inside = np.argwhere(mask)
    hu[tuple(inside[len(inside) // 2])] = 3e38
    corrupt = sitk.GetImageFromArray(hu)
    corrupt.CopyInformation(t50)
    sitk.WriteImage(corrupt, str(case.image_path("T50")))
    run_dir = tmp_path / "run"
    args = [a.replace(str(converted_case), str(case_dir)) for a in quick]
    # Every mask point in every batch, so the corrupt voxel is sampled in iteration 1.
    line = error_line(
        rnr(
            "register",
            *args,
            "--out",
            run_dir,
            "--set",
            "iterations=5",
            "--set",
            f"batch_size={int(mask.sum())}",
            "--name",
            "corrupt_t50",
        ),
        "register",
    )
    _assert_stopped_on_non_finite_loss(line, "corrupt_t50", 1, 5)
    assert files_in(run_dir) == []


# ===================================================================== killed mid-registration (command)
def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the process group this test started (start_new_session=True) and reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:  # already gone: the caller's assertion says why
        pass
    proc.wait(timeout=30)


@pytest.mark.slow
def test_register_killed_mid_run_leaves_no_complete_looking_file(quick, tmp_path):
    run_dir = tmp_path / "run"
    assert _register(run_dir, quick, "--set", "iterations=2").code == 0  # an earlier, finished run
    assert set(RUN_OUTPUTS) <= set(files_in(run_dir))
    stderr = tmp_path / "register.err"
    with open(stderr, "w") as err:
        command = rnr_command("register", *quick, "--out", run_dir, "--set", "iterations=1000000", "--name", "killed")
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err, env=child_env(), start_new_session=True)
        try:
            # tqdm draws the bar (0/1000000) when the loop starts: from then on the job is mid-registration.
            wait_for_text(stderr, r"killed \(rnr\).*0/1000000", proc, timeout=120)
            time.sleep(1.0)
        finally:
            _kill_group(proc)
    assert proc.returncode == -signal.SIGKILL
    assert files_in(run_dir) == [], f"a killed registration left {files_in(run_dir)}"
    # The next step refuses the folder with a clear message instead of evaluating something half-made.
    line = error_line(
        rnr("evaluate", "--case-dir", quick[1], "--run-dir", run_dir, "--mask", quick[3], "--no-figures"), "evaluate"
    )
    assert f"{run_dir / layout.CHECKPOINT}: checkpoint not found" in line
    assert files_in(run_dir) == []


# ============================================================================ the workflow, for real
# The data settings of tests/workflow_configs/tiny.yaml: the prepared folder is a copy of conftest's tiny_run
# (its phantom, conversions and masks), which Snakemake then finds up to date.
TINY_DATA = {
    k: yaml.safe_load(TINY.read_text())[k] for k in ("dataset", "cases", "register_threads", "masks", "phantom")
}
WORKFLOW_CONFIG = {
    **TINY_DATA,
    "configurations": {
        "fast": {"iterations": 3, "batch_size": 200, "intermediate": False, "n_blocks": 1, "width": 16},
        "absurd": {"iterations": 10, "batch_size": 200, "intermediate": False, "n_blocks": 1, "width": 16, "lr": 1e30},
        # Long enough to be killed mid-loop, short enough to redo: about 0.02 s of CPU per iteration here, so
        # ~12 s, while the kill comes once the job has used a whole fast run's CPU and 1 s more (~5 s, loading
        # included; the fast run's workflow parse no longer loads torch).
        "slow": {"iterations": 600, "batch_size": 500, "intermediate": False},
    },
}


def _run_files(configuration: str, case: int = 1, dataset: str = "phantom") -> dict[str, str]:
    base = f"results/{dataset}/runs/{configuration}/case{case}/seed3"
    return {name: f"{base}/{name}" for name in RUN_OUTPUTS}


def _write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def prepared(tiny_run, tmp_path_factory) -> Path:
    """A workflow directory where the phantom, the conversions and the masks are done (conftest's tiny_run:
    Snakemake ran them, and its records come along), with the config ``reliability.yaml``; tests copy it."""
    workdir = tmp_path_factory.mktemp("workflow_prepared")
    for part in ("results/phantom/source", "results/phantom/data", ".snakemake/metadata"):
        copy_tree(tiny_run["workdir"] / part, workdir / part)
    config = _write_config(workdir / "reliability.yaml", WORKFLOW_CONFIG)
    result = snakemake(workdir, "--configfile", config, "--dry-run", "results/phantom/data/case1/mask_T00.nii.gz")
    assert result.code == 0 and "Nothing to be done" in result.text, result.text
    return workdir


def _workdir(prepared: Path, tmp_path: Path) -> tuple[Path, Path]:
    workdir = copy_tree(prepared, tmp_path / "wd")
    return workdir, workdir / "reliability.yaml"


@pytest.fixture
def workflow_copy(tmp_path) -> Path:
    """A copy of the workflow itself (Snakefile, workflow/, config/) whose config/config.yaml a test edits."""
    root = tmp_path / "repo"
    root.mkdir()
    (root / "Snakefile").write_text((REPO / "Snakefile").read_text())
    for folder in ("workflow", "config"):
        copy_tree(REPO / folder, root / folder)
    return root


def _edit_default_config(root: Path, edit) -> None:
    path = root / "config" / "config.yaml"
    config = yaml.safe_load(path.read_text())
    edit(config)
    path.write_text(yaml.safe_dump(config, sort_keys=False))


@pytest.mark.workflow
def test_dirlab_dir_empty(tmp_path):
    """An empty dirlab_dir passes the plan (a folder) and fails the conversion, with its one-line error in the
    log (a missing folder is refused by the plan: test_plan.py)."""
    workdir = tmp_path / "wd"
    workdir.mkdir()
    dirlab_dir = tmp_path / "dirlab"
    dirlab_dir.mkdir()
    result = snakemake(
        workdir,
        "--cores",
        "1",
        "--config",
        "dataset=dirlab",
        f"dirlab_dir={dirlab_dir}",
        "cases=[1]",
        "--",
        "results/dirlab/data/case1/case.json",
    )
    assert result.code == SNAKEMAKE_FAILED, result.text
    assert "Error in rule convert" in result.text
    assert "exit status 2" in result.text or "exit code 2" in result.text, result.text
    log = (workdir / "results/dirlab/logs/convert/case1.log").read_text()
    expected = "no folder for case 1: expected Case1Pack/ (or Case1Deploy/, any letter case); found folders: none"
    assert one_error_line(log, "rnr convert: error:") == f"rnr convert: error: {dirlab_dir}: {expected}", log
    assert files_in(workdir / "results/dirlab/data") == []


@pytest.mark.workflow
@NO_CUDA
def test_use_gpu_without_cuda_fails_the_registration(prepared, tmp_path):
    """The schema's documented behaviour: use_gpu true means device cuda; no silent CPU fall-back, the
    registration fails with a message in its log."""
    workdir, config = _workdir(prepared, tmp_path)
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    assert "no silent CPU fall-back" in schema["properties"]["use_gpu"]["description"]
    files = _run_files("fast")
    gpu = _write_config(tmp_path / "gpu.yaml", {"use_gpu": True})
    result = snakemake(workdir, "--configfile", config, gpu, "--cores", "1", "--", files[layout.RUN_JSON])
    assert result.code != 0 and "Error in rule register" in result.text, result.text
    log = (workdir / "results/phantom/logs/register/fast/case1/seed3.log").read_text()
    assert "use_gpu=True -> device cuda" in log
    assert "rnr register: error:" in log and "CUDA is not available" in log, log
    assert files_in(workdir / "results/phantom/runs/fast/case1/seed3") == []


@pytest.mark.workflow
def test_non_finite_loss_in_the_workflow(prepared, tmp_path):
    workdir, config = _workdir(prepared, tmp_path)
    files = _run_files("absurd")
    result = snakemake(workdir, "--configfile", config, "--cores", "1", "--", files[layout.RUN_JSON])
    assert result.code != 0 and "Error in rule register" in result.text, result.text
    log = (workdir / "results/phantom/logs/register/absurd/case1/seed3.log").read_text()
    line = next((x for x in log.splitlines() if "rnr register: error:" in x), None)
    assert line is not None and "Traceback" not in log, log
    _assert_stopped_on_non_finite_loss(line, "absurd", 2, 10)
    assert files_in(workdir / "results/phantom/runs/absurd/case1/seed3") == []


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@pytest.mark.workflow
@pytest.mark.slow
def test_workflow_killed_mid_registration_redoes_exactly_that_job(prepared, tmp_path):
    workdir, config = _workdir(prepared, tmp_path)
    fast, slow = _run_files("fast"), _run_files("slow")
    targets = [fast[layout.RUN_JSON], slow[layout.RUN_JSON]]
    # 1. The fast registration finishes. The CPU time of this whole Snakemake run (parsing, the settings
    #    job and a complete registration, loading included) bounds what the slow job spends before its loop.
    before = _children_cpu_seconds()
    result = snakemake(workdir, "--configfile", config, "--cores", "1", "--", fast[layout.RUN_JSON])
    assert result.code == 0, result.text
    pre_loop_bound = _children_cpu_seconds() - before
    kept = [
        fast[layout.CHECKPOINT],
        "results/phantom/data/case1/case.json",
        "results/phantom/data/case1/mask_T00.nii.gz",
    ]
    stamps = {f: (workdir / f).stat().st_mtime_ns for f in kept}

    # 2. The slow registration is killed, with Snakemake, once it is inside its loop. The workflow runs
    #    `rnr register --no-progress`, so nothing is printed while it fits: "inside the loop" is told by the
    #    CPU time the job has used, more than a whole earlier run's.
    run_dir = workdir / "results/phantom/runs/slow/case1/seed3"
    with open(tmp_path / "killed_run.log", "w") as out:
        proc = subprocess.Popen(
            snakemake_command(workdir, "--configfile", config, "--cores", "1", "--", *targets),
            stdout=out,
            stderr=subprocess.STDOUT,
            env=child_env(),
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 300
            used = 0.0
            while used < pre_loop_bound + 1.0:
                assert proc.poll() is None, (tmp_path / "killed_run.log").read_text()
                assert time.monotonic() < deadline, f"the slow registration used only {used:.1f} s CPU"
                used = cpu_seconds(find_processes("register", "runs/slow/case1/seed3", cwd=workdir))
                time.sleep(0.1)
            assert files_in(run_dir) == [], "the slow registration ended before it could be killed"
        finally:
            _kill_group(proc)
    deadline = time.monotonic() + 30
    while find_processes(cwd=workdir) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert find_processes(cwd=workdir) == [], "a process of the killed run is still running"
    assert files_in(run_dir) == [], f"the killed registration left {files_in(run_dir)}"
    assert not (workdir / "results/phantom/benchmarks/register/slow/case1/seed3.tsv").exists()

    # 3. The plan of the re-run: that registration and nothing else.
    assert snakemake(workdir, "--configfile", config, "--unlock").code == 0
    plan = snakemake(workdir, "--configfile", config, "--cores", "1", "--dry-run", "--", *targets)
    assert plan.code == 0, plan.text
    assert job_counts(plan.text) == {"register": 1, "total": 1}, plan.text
    assert re.search(r"rule register:.*?wildcards: configuration=slow, case=1", plan.text, re.S), plan.text

    # 4. The re-run does it; nothing upstream and no finished registration is recomputed.
    rerun = snakemake(workdir, "--configfile", config, "--cores", "1", "--rerun-incomplete", "--", *targets)
    assert rerun.code == 0, rerun.text
    assert len(re.findall(r"rule register:", rerun.text)) == 1 and "configuration=slow" in rerun.text
    assert set(RUN_OUTPUTS) <= set(files_in(run_dir))
    assert {f: (workdir / f).stat().st_mtime_ns for f in kept} == stamps
    again = snakemake(workdir, "--configfile", config, "--dry-run", "--", *targets)
    assert "Nothing to be done" in again.text


@pytest.mark.workflow
def test_dataset_dirlab_without_dirlab_dir(tmp_path):
    """The README row "dataset: dirlab without dirlab_dir": Snakemake stops before any job (its own exit
    code) with the message on one line. The one workflow run of a plan error: the plan's other checks are
    tested in-process (test_plan.py)."""
    workdir = tmp_path / "wd"
    workdir.mkdir()
    result = snakemake(workdir, "--dry-run", "--config", "dataset=dirlab")
    assert result.code == SNAKEMAKE_FAILED, result.text
    message = (
        "config: dataset is 'dirlab' but dirlab_dir is not set; give the folder holding the Case{N}Pack "
        "folders of DIR-Lab, as unpacked, e.g. --config dataset=dirlab dirlab_dir=/data/dirlab"
    )
    assert any(message in line for line in result.text.splitlines()), result.text
    assert not (workdir / "results").exists()


# ======================================================================== new hostile inputs (issue 16)
# -- a full disk while writing a checkpoint ----------------------------------------------------------------
@pytest.fixture
def small_fs(tmp_path):
    """A 4 MiB tmpfs under tmp_path (skips, with the reason, where mounting is impossible)."""
    try:
        with small_file_system(tmp_path / "small") as folder:
            yield folder
    except PermissionError as exc:
        pytest.skip(f"needs a mountable tmpfs (root): {exc}")


def _fill_before_checkpoint(quick, tmp_path, small_fs) -> tuple[Path, Path]:
    """Measure a short registration's outputs on ordinary disk, then fill ``small_fs`` so that everything
    but the checkpoint (written last) fits. Returns (run folder on small_fs, filler file)."""
    reference = tmp_path / "reference"
    assert _register(reference, quick, "--set", "iterations=2").code == 0
    page = 4096
    sizes = {name: (reference / name).stat().st_size for name in RUN_OUTPUTS}
    others = sum(-(-size // page) * page for name, size in sizes.items() if name != layout.CHECKPOINT)
    run_dir = small_fs / "run"
    run_dir.mkdir()
    # tmpfs counts whole pages: room for exactly the other files' pages, none for the checkpoint's.
    filler = fill_leaving(small_fs, others + page // 2)
    return run_dir, filler


def test_full_disk_while_writing_the_checkpoint(quick, tmp_path, small_fs):
    """The run folder's file system fills up while the checkpoint is written: one line naming the
    checkpoint and the full file system, exit 2, no checkpoint and no temporary file; with space freed the
    same command succeeds."""
    run_dir, filler = _fill_before_checkpoint(quick, tmp_path, small_fs)
    result = _register(run_dir, quick, "--set", "iterations=2")
    line = error_line(result, "register")
    assert (
        f"{run_dir / layout.CHECKPOINT}: cannot write (No space left on device); the file system holding "
        f"{run_dir} is full: free space there and run the step again; nothing was written under this name"
    ) in line, line
    left = files_in(run_dir)
    assert layout.CHECKPOINT not in left and not [f for f in left if f.startswith(".")], left
    filler.unlink()
    assert _register(run_dir, quick, "--set", "iterations=2").code == 0
    assert set(RUN_OUTPUTS) <= set(files_in(run_dir))


def test_full_disk_leaves_no_partial_run_folder(quick, tmp_path, small_fs):
    run_dir, _ = _fill_before_checkpoint(quick, tmp_path, small_fs)
    error_line(_register(run_dir, quick, "--set", "iterations=2"), "register")
    assert files_in(run_dir) == []


def test_full_disk_while_writing_tables_and_records(small_fs):
    """The writers every step uses (CSV tables, JSON records, images) on a full file system: a one-line
    OutputError naming the file, nothing under its name, no temporary file."""
    import pandas as pd

    from rnr.io import OutputError, write_csv, write_image, write_json

    fill_leaving(small_fs, 0)
    frame = pd.DataFrame({"tre_mm": np.arange(50000, dtype=float)})
    image = sitk.GetImageFromArray(np.random.default_rng(0).integers(0, 1000, (40, 64, 64)).astype(np.int16))
    for name, write in (
        ("tre.csv", lambda p: write_csv(p, frame)),
        ("metrics.json", lambda p: write_json(p, {"values": list(range(50000))})),
        ("T00.nii.gz", lambda p: write_image(p, image)),
    ):
        with pytest.raises(OutputError) as info:
            write(small_fs / name)
        message = str(info.value)
        assert message.startswith(f"{small_fs / name}: cannot write (No space left on device)"), message
        assert "\n" not in message
        assert files_in(small_fs) == ["filler.bin"]


# -- a converted case edited after conversion ---------------------------------------------------------------
def _resized(path: Path, slices: int) -> None:
    """Replace the NIfTI ``path`` by one with ``slices`` slices (last slice dropped or repeated)."""
    image = sitk.ReadImage(str(path))
    array = sitk.GetArrayFromImage(image)
    array = array[:slices] if slices <= array.shape[0] else np.concatenate([array, array[-1:]], axis=0)
    other = sitk.GetImageFromArray(array)
    other.SetSpacing(image.GetSpacing())
    other.SetDirection(image.GetDirection())
    other.SetOrigin(image.GetOrigin())
    sitk.WriteImage(other, str(path))


@pytest.mark.workflow
def test_converted_case_edited_after_conversion(prepared, tmp_path):
    """T00.nii.gz replaced by a volume with one slice less after conversion: the workflow re-runs the
    mask (its input changed), which stops naming T00, both sizes and case.json; the registration does not
    run; with the file restored the workflow resumes and finishes."""
    workdir, config = _workdir(prepared, tmp_path)
    case_dir = workdir / "results/phantom/data/case1"
    t00 = case_dir / "T00.nii.gz"
    original = tmp_path / "T00_original.nii.gz"
    original.write_bytes(t00.read_bytes())
    nx, ny, nz = load_case(case_dir).size_xyz
    _resized(t00, nz - 1)
    files = _run_files("fast")
    result = snakemake(workdir, "--configfile", config, "--cores", "1", "--", files[layout.RUN_JSON])
    assert result.code == SNAKEMAKE_FAILED and "Error in rule segment" in result.text, result.text
    log = (workdir / "results/phantom/logs/segment/case1.log").read_text()
    line = one_error_line(log, "rnr segment: error:")
    relative = t00.relative_to(workdir)  # the workflow names files relative to its working directory
    assert f"error: {relative}: expected size (x, y, z) = {(nx, ny, nz)}" in line, line
    assert "as recorded in case.json" in line
    assert f"found size {(nx, ny, nz - 1)}" in line and "run rnr convert again" in line
    assert not (case_dir / layout.MASK_T00).exists() and not (case_dir / "mask_T00.json").exists()
    assert files_in(workdir / "results/phantom/runs/fast/case1/seed3") == []
    t00.write_bytes(original.read_bytes())
    resumed = snakemake(workdir, "--configfile", config, "--cores", "1", "--", files[layout.RUN_JSON])
    assert resumed.code == 0, resumed.text
    assert set(RUN_OUTPUTS) <= set(files_in(workdir / "results/phantom/runs/fast/case1/seed3"))


def test_t00_and_t50_of_different_sizes(converted_case, quick, tmp_path):
    """A converted case whose T50 has one slice more than T00 (and case.json): `rnr segment` and
    `rnr register` stop naming T50 before anything is computed; restored, the registration runs."""
    case_dir = copy_tree(converted_case, tmp_path / "case1")
    t50 = case_dir / "T50.nii.gz"
    original = t50.read_bytes()
    nx, ny, nz = load_case(converted_case).size_xyz
    _resized(t50, nz + 1)
    expected = f"{t50}: expected size (x, y, z) = {(nx, ny, nz)}"
    line = error_line(rnr("segment", "--case-dir", case_dir, "--method", "threshold"), "segment")
    assert expected in line and f"found size {(nx, ny, nz + 1)}" in line, line
    assert not (case_dir / layout.MASK_T00).exists()
    args = [a.replace(str(converted_case), str(case_dir)) for a in quick]
    run_dir = tmp_path / "run"
    line = error_line(rnr("register", *args, "--out", run_dir, "--set", "iterations=2"), "register")
    assert expected in line and "every phase of a case shares the T00 grid" in line, line
    assert files_in(run_dir) == []
    t50.write_bytes(original)
    assert rnr("register", *args, "--out", run_dir, "--set", "iterations=2").code == 0


# -- a checkpoint from another case ---------------------------------------------------------------------------
def _short_registration(case_dir: Path, run_dir: Path) -> Path:
    result = rnr(
        "register",
        "--case-dir",
        case_dir,
        "--mask",
        case_dir / layout.MASK_PROVIDED,
        "--out",
        run_dir,
        "--set",
        "iterations=2",
        "--set",
        "intermediate=false",
        "--set",
        "n_blocks=1",
        "--set",
        "width=16",
        "--set",
        "batch_size=200",
    )
    assert result.code == 0, result.text
    return run_dir / layout.CHECKPOINT


@pytest.fixture(scope="module")
def case2_checkpoint(phantom_dataset, tmp_path_factory) -> Path:
    """A short registration of phantom case 2 (59 x 48 x 17 voxels, another grid than case 1's)."""
    folder = tmp_path_factory.mktemp("case2")
    case_dir = dirlab.convert_case(phantom_dataset, 2, folder / "case2")
    return _short_registration(case_dir, folder / "run")


@pytest.fixture(scope="module")
def same_grid_checkpoint(converted_case, tmp_path_factory) -> Path:
    """A checkpoint of a "case 2" on case 1's very grid, as DIR-Lab's cases 6, 8 and 9 share one
    (512 x 512 x 128 at 0.97 x 0.97 x 2.5 mm): case 1's data relabelled case 2 in its case.json."""
    folder = tmp_path_factory.mktemp("same_grid")
    case_dir = copy_tree(converted_case, folder / "case2")
    info = json.loads((case_dir / layout.CASE_JSON).read_text())
    info["case"] = 2
    (case_dir / layout.CASE_JSON).write_text(json.dumps(info))
    return _short_registration(case_dir, folder / "run")


def test_checkpoint_case_check(case2_checkpoint, converted_case):
    """rnr.data.case.check_checkpoint_case on a real checkpoint of case 2 against case 1."""
    transform, metadata = load_transform(case2_checkpoint)
    case1 = load_case(converted_case)
    with pytest.raises(dirlab.InputError) as info:
        check_checkpoint_case(metadata, transform.size_xyz, transform.spacing_xyz, case1, case2_checkpoint)
    message = str(info.value)
    size1, size2 = tuple(case1.size_xyz), tuple(transform.size_xyz)
    assert message.startswith(f"{case2_checkpoint}: expected a checkpoint of case 1 (size (x, y, z) = {size1}")
    assert f"found one of case 2 (size {size2}" in message and "\n" not in message
    case2 = load_case(case2_checkpoint.parent.parent / "case2")
    check_checkpoint_case(metadata, transform.size_xyz, transform.spacing_xyz, case2, case2_checkpoint)  # passes


@pytest.mark.parametrize("grid", ["another grid", "the same grid"])
def test_checkpoint_from_another_case_is_refused(grid, request, converted_case, tmp_path):
    """A checkpoint of case 2 copied into a run folder of case 1: `rnr evaluate` names the checkpoint and
    both cases (on the same grid it is evaluated today without a word: wrong numbers)."""
    source = request.getfixturevalue("case2_checkpoint" if grid == "another grid" else "same_grid_checkpoint")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / layout.CHECKPOINT).write_bytes(source.read_bytes())
    mask = converted_case / layout.MASK_PROVIDED
    result = rnr(
        "evaluate",
        "--case-dir",
        converted_case,
        "--run-dir",
        run_dir,
        "--mask",
        mask,
        "--no-figures",
        "--no-step-folding",
    )
    line = error_line(result, "evaluate")
    assert f"{run_dir / layout.CHECKPOINT}: expected a checkpoint of case 1" in line
    assert "found one of case 2" in line
    assert files_in(run_dir) == [layout.CHECKPOINT]


# -- mask figures in the tables' provenance -------------------------------------------------------------------
def test_mask_figures_reach_the_tables(converted_case, quick, tmp_path):
    case_dir = copy_tree(converted_case, tmp_path / "case1")
    assert rnr("segment", "--case-dir", case_dir, "--method", "provided").code == 0
    record = read_mask_record(case_dir / layout.MASK_T00)
    run_dir = tmp_path / "runs" / "quick" / "case1"
    args = [a.replace(str(converted_case), str(case_dir)) for a in quick]
    args[3] = str(case_dir / layout.MASK_T00)
    assert rnr("register", *args, "--out", run_dir, "--set", "iterations=2", "--name", "quick").code == 0
    evaluated = rnr("evaluate", "--case-dir", case_dir, "--run-dir", run_dir, "--no-figures", "--no-step-folding")
    assert evaluated.code == 0, evaluated.text
    metrics = yaml.safe_load((run_dir / layout.METRICS_JSON).read_text())
    assert metrics["mask"]["air_fraction"] == record["air_fraction"]
    assert rnr("tables", "--runs-dir", tmp_path / "runs", "--out", tmp_path / "tables").code == 0
    import pandas as pd

    tre = pd.read_csv(tmp_path / "tables" / "tre.csv")
    for column in ("mask_method", "mask_air_fraction", "mask_volume_l", "mask_n_components"):
        assert column in tre.columns, list(tre.columns)
    assert tre["mask_air_fraction"].iloc[0] == pytest.approx(record["air_fraction"])


# ============================================================================== .ci/run's SLURM install
def _ci_slurm_block() -> str:
    text = (REPO / ".ci" / "run").read_text()
    begin, end = "# --- SLURM install: begin", "# --- SLURM install: end"
    assert begin in text and end in text, "the SLURM install block of .ci/run lost its markers"
    return text[text.index(begin) : text.index(end)]


@pytest.mark.skipif(
    os.geteuid() != 0 or not Path("/etc/debian_version").is_file(), reason="the block runs only as root on Debian"
)
@pytest.mark.parametrize("apt_works", [False, True])
def test_ci_fails_when_slurm_cannot_be_installed(apt_works, tmp_path):
    """.ci/run's SLURM block with a stand-in apt-get first on PATH: when the install fails twice, CI stops
    with exit 1 and says so (it does not go on to let the slurm tests skip); when it works,
    RNR_REQUIRE_SLURM=1 is exported."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    fake = bin_dir / "apt-get"
    fake.write_text(f'#!/bin/sh\necho "$*" >> {calls}\nexit {0 if apt_works else 100}\n')
    fake.chmod(0o755)
    script = tmp_path / "block.sh"
    script.write_text("set -euo pipefail\n" + _ci_slurm_block() + 'echo "REQUIRE=${RNR_REQUIRE_SLURM:-unset}"\n')
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", RNR_CI_APT_RETRY_DELAY="0")
    env.pop("RNR_REQUIRE_SLURM", None)
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env, timeout=60)
    updates = [line for line in calls.read_text().splitlines() if line.startswith("update")]
    if apt_works:
        assert done.returncode == 0, done.stderr
        assert "REQUIRE=1" in done.stdout and len(updates) == 1
    else:
        assert done.returncode == 1, done.stdout + done.stderr
        assert "could not be installed after a retry" in done.stderr
        assert "REQUIRE=" not in done.stdout and len(updates) == 2
