"""`rnr register` and `rnr bench` on the command line (rnr.cli.main), on the session phantom case."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from rnr import layout
from rnr.cli import main as rnr_main
from rnr.data.case import load_case
from rnr.io import read_csv, read_json


@pytest.fixture
def case_dir(converted_case, tmp_path) -> Path:
    """A private copy of the converted case with the provided mask as its registration mask."""
    path = Path(shutil.copytree(converted_case, tmp_path / "case1"))
    shutil.copy(path / layout.MASK_PROVIDED, path / layout.MASK_T00)
    return path


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_register_command_writes_outputs_and_prints_summary(case_dir, tmp_path, capsys):
    settings = tmp_path / "settings.yaml"
    settings.write_text("iterations: 4\nbatch_size: 500\nwidth: 20\n")
    out = tmp_path / "runs" / "small" / "case1"
    code = rnr_main(
        [
            "register",
            "--case-dir",
            str(case_dir),
            "--out",
            str(out),
            "--settings",
            str(settings),
            "--set",
            "iterations=6",
            "--set",
            "sampling=cycle",
            "--name",
            "small",
            "--no-progress",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "6 iterations" in printed and "TRE" in printed and "mm before" in printed
    run = read_json(out / layout.RUN_JSON)
    assert run["iterations"] == 6 and run["batch_size"] == 500 and run["configuration"] == "small"
    assert run["settings"]["width"] == 20 and run["settings"]["sampling"] == "cycle"
    assert len(read_csv(out / layout.LOSS_CSV)) == 6
    warped = read_csv(out / layout.WARPED_LANDMARKS, layout.LANDMARK_COLUMNS)
    p00 = load_case(case_dir).landmarks("T00")
    assert np.abs(warped[["x_vox", "y_vox", "z_vox"]].to_numpy() - p00).max() < 5  # near identity, not equal
    assert (out / layout.CHECKPOINT).is_file()


def test_register_command_progress_bar_goes_to_stderr(case_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert (
        rnr_main(
            [
                "register",
                "--case-dir",
                str(case_dir),
                "--out",
                str(out),
                "--set",
                "iterations=3",
                "--set",
                "batch_size=200",
                "--set",
                "width=8",
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    assert "3/3" in captured.err  # tqdm's final state


def test_register_command_errors_are_one_line_with_exit_code_2(case_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert rnr_main(["register", "--case-dir", str(case_dir), "--out", str(out), "--set", "iteratons=3"]) == 2
    err = capsys.readouterr().err
    assert "unknown setting" in err and "iterations" in err and "Traceback" not in err
    (case_dir / layout.MASK_T00).unlink()
    assert rnr_main(["register", "--case-dir", str(case_dir), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert layout.MASK_T00 in err and "rnr segment" in err
    assert not out.exists() or not any(out.iterdir())


def test_bench_command_checks_equality_and_reports_ratio(case_dir, tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = rnr_main(
        [
            "bench",
            "--case-dir",
            str(case_dir),
            "--iterations",
            "2",
            "--batch-size",
            "300",
            "--repeats",
            "1",
            "--set",
            "width=16",
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "equal to float precision" in printed and "ratio project / reference" in printed
    record = json.loads(out.read_text())
    assert record["equality"]["passed"] and record["equality"]["grad_max_rel_diff"] < 1e-4
    assert set(record["loops"]) == {"project", "reference"} and record["ratio"] > 0
    assert record["loops"]["project"]["median_iterations_per_s"] > 0 and record["batch_size"] == 300
