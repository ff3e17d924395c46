"""Method ``command`` (rnr/methods/command.py): a tool of the test suite's own (tests/command_tool.py) run by
``rnr register`` end to end, scored by ``rnr evaluate``; every failure is one line naming the case and the
command, and leaves no run behind."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from rnr import layout
from rnr.cli import main
from rnr.config import SettingsError
from rnr.data.case import load_case
from rnr.methods.command import CommandSettings
from rnr.methods.settings import settings_for_method

TOOL = Path(__file__).with_name("command_tool.py")
ARGS = "{fixed} {moving} {fixed_mask} {field} {threads} {case} {seed}"


def _command(mode: str, *extra: str) -> str:
    return " ".join([shlex.quote(sys.executable), shlex.quote(str(TOOL)), mode, ARGS, *extra])


def _register(converted_case: Path, tmp_path: Path, command: str, **more) -> tuple[int, Path]:
    settings = tmp_path / "settings.yaml"
    settings.write_text(yaml.safe_dump({"method": "command", "command": command, **more}))
    out = tmp_path / "run"
    mask = str(converted_case / layout.MASK_PROVIDED)
    argv = ["register", "--case-dir", str(converted_case), "--out", str(out), "--mask", mask, "--name", "tool"]
    return main([*argv, "--settings", str(settings), "--no-progress"]), out


def test_a_tool_by_command_runs_end_to_end_and_is_scored_like_any_method(converted_case, tmp_path, capsys):
    """The tool writes the constant world vector (1, -2, 3) mm: every T00 landmark moves by (1/sx, -2/sy, -3/sz)
    voxels (z flips with the direction diag(1, 1, -1)), the run record keeps exit code, stderr and time."""
    code, out = _register(converted_case, tmp_path, _command("shift", "1", "-2", "3"))
    assert code == 0, capsys.readouterr().err
    run = json.loads((out / layout.RUN_JSON).read_text())
    assert (run["method"], run["command_exit_code"], run["iterations"]) == ("command", 0, 0)
    assert run["wall_s"] > 0 and str(TOOL) in run["command_line"] and "{" not in run["command_line"]
    case = load_case(converted_case)
    mask = case.load_mask(converted_case / layout.MASK_PROVIDED)
    assert f"command_tool: case 1, {int(mask.sum())} mask voxels" in run["command_stderr_tail"]
    mask_arg = str(converted_case / layout.MASK_PROVIDED)
    assert main(["evaluate", "--case-dir", str(converted_case), "--run-dir", str(out), "--mask", mask_arg]) == 0
    record = json.loads((out / layout.METRICS_JSON).read_text())
    assert (record["method"], record["transform_kind"]) == ("command", "command")
    sx, sy, sz = case.spacing_xyz
    moved = case.landmarks("T00") + [1 / sx, -2 / sy, -3 / sz]
    expected = np.linalg.norm((moved - case.landmarks("T50")) * case.spacing_xyz, axis=1).mean()
    assert record["tre"]["mean_mm"] == pytest.approx(expected, abs=1e-4)
    assert record["folding"]["count"] == 0


@pytest.mark.parametrize(
    ("mode", "fragment"),
    [
        ("fail", "exited with code 3; its stderr ends: command_tool: cannot converge"),
        ("nothing", "exited with code 0 but wrote no field at {field}"),
        ("scalar", "wrote a field that cannot be used: "),
    ],
)
def test_a_failing_tool_stops_the_run_with_one_line_naming_case_and_command(
    converted_case, tmp_path, capsys, mode, fragment
):
    command = _command(mode)
    code, out = _register(converted_case, tmp_path, command)
    assert code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("rnr register: error:")]
    assert len(errors) == 1
    assert f"case 1: command {command!r} " in errors[0] and fragment in errors[0]
    if mode == "scalar":
        assert "found a 3-D image with 1 component(s) per voxel" in errors[0]
    assert not (out / layout.CHECKPOINT).exists() and not (out / layout.RUN_JSON).exists()


def test_a_tool_that_runs_too_long_is_stopped(converted_case, tmp_path, capsys):
    command = f"{shlex.quote(sys.executable)} -c 'import time; time.sleep(30)' {{field}}"
    code, out = _register(converted_case, tmp_path, command, command_timeout_s=1)
    assert code == 2
    assert f"case 1: command {command!r} did not finish within command_timeout_s = 1 s" in capsys.readouterr().err
    assert not (out / layout.RUN_JSON).exists()


def test_settings_check_the_template():
    assert settings_for_method("command").params == CommandSettings()
    ok = settings_for_method("command", command="tool {fixed} {moving} {fixed_mask} {field} {threads} {case} {seed}")
    assert ok.params.command.startswith("tool")
    for bad, fragment in (
        ("tool {fixed} {out}", "found {out}"),
        ("tool {fixed}", "must contain {field}"),
        ("tool {field", "not a valid template"),
        ("tool {field:>4}", "write placeholders plainly"),
    ):
        with pytest.raises(SettingsError, match=fragment.replace("{", r"\{").replace("}", r"\}")):
            settings_for_method("command", command=bad)


def test_an_empty_command_is_refused_when_the_method_runs(converted_case, tmp_path, capsys):
    code, out = _register(converted_case, tmp_path, "")
    assert code == 2 and "setting 'command' is empty" in capsys.readouterr().err
