"""Helpers of tests/test_reliability.py: run the real `rnr` command and the real Snakemake workflow, damage
copies of a phantom dataset the way users' files get damaged, and list what a failed step left behind.

Nothing here imitates a production part: commands run through ``rnr.cli.main`` (in this process, as the
console script does) or ``python -m rnr.cli`` / ``python -m snakemake`` (in a child process).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "Snakefile"


# -- the rnr command ---------------------------------------------------------------------------------------
@dataclass
class Outcome:
    """Exit code and captured output of one command."""

    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def rnr(*args: str | Path) -> Outcome:
    """Run ``rnr ARGS`` in this process, as the console script would: ``rnr.cli.main``'s return value is
    the exit code, argparse errors exit with their code, and an exception that escapes ``main`` is what
    Python shows on a console: a traceback on stderr and exit code 1."""
    from rnr.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse
            code = exc.code if isinstance(exc.code, int) else 1
        except Exception:  # escaped main(): the user would see this traceback
            traceback.print_exc(file=err)
            code = 1
    return Outcome(int(code), out.getvalue(), err.getvalue())


def error_line(outcome: Outcome, command: str) -> str:
    """The one-line error of a failed ``rnr COMMAND`` (asserting there is exactly that: no traceback)."""
    assert outcome.code != 0, f"rnr {command} succeeded on bad input:\n{outcome.text}"
    assert "Traceback" not in outcome.err, f"rnr {command} crashed instead of a clear error:\n{outcome.err}"
    lines = [line for line in outcome.err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(f"rnr {command}: error:")]
    assert errors, f"no 'rnr {command}: error:' line in:\n{outcome.err}"
    return errors[-1]


def child_env(threads: int = 1) -> dict[str, str]:
    """Environment of child processes: this interpreter's bin folder first on PATH (so Snakemake's rules
    find this environment's `rnr`), and one thread per process (the test machine has two shared cores)."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    return env


def rnr_command(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "rnr.cli", *(str(a) for a in args)]


# -- Snakemake ---------------------------------------------------------------------------------------------
def snakemake_command(workdir: Path, *args: str | Path, snakefile: Path = SNAKEFILE) -> list[str]:
    return [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(snakefile),
        "--directory",
        str(workdir),
        *(str(a) for a in args),
    ]


def snakemake(workdir: Path, *args: str | Path, snakefile: Path = SNAKEFILE, timeout: float = 600) -> Outcome:
    result = subprocess.run(
        snakemake_command(workdir, *args, snakefile=snakefile),
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=timeout,
    )
    return Outcome(result.returncode, result.stdout, result.stderr)


def job_counts(output: str) -> dict[str, int]:
    """The "Job stats" table of a (dry) run: rule -> number of jobs ({} when there is nothing to do)."""
    if "Job stats:" not in output:
        return {}
    counts = {}
    for line in output.split("Job stats:", 1)[1].splitlines()[3:]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        counts[parts[0]] = int(parts[1])
    return counts


def validation_error(output: str) -> str:
    """The ``ValidationError: ...`` line Snakemake prints for a config the schema rejects."""
    match = re.search(r"^ValidationError: .*$", output, re.M)
    assert match, f"no schema validation error in:\n{output}"
    return match.group(0)


# -- damaging a copy of the phantom dataset ----------------------------------------------------------------
def image_file(dataset: Path, case: int, phase: str) -> Path:
    from rnr import phantom

    return dataset / phantom.case_folder_name(case) / "Images" / phantom.image_file_name(case, phase)


def landmark_file(dataset: Path, case: int, phase: str) -> Path:
    from rnr import phantom

    return dataset / phantom.case_folder_name(case) / phantom.landmark_file_path(case, phase)


def mask_file(dataset: Path, case: int) -> Path:
    from rnr import phantom

    return dataset / phantom.case_folder_name(case) / phantom.mask_file_path(case)


def edit_landmark_line(path: Path, line: int, text: str) -> None:
    """Replace 1-based ``line`` of a DIR-Lab landmark file (CRLF kept)."""
    lines = path.read_bytes().decode().split("\r\n")
    lines[line - 1] = text
    path.write_bytes("\r\n".join(lines).encode())


def drop_landmark_rows(path: Path, n: int) -> None:
    """Remove the last ``n`` rows of a DIR-Lab landmark file."""
    rows = [r for r in path.read_bytes().decode().split("\r\n") if r.strip()]
    path.write_bytes(("\r\n".join(rows[:-n]) + "\r\n").encode())


def write_user_mask(path: Path, array_zyx: np.ndarray, spacing_xyz) -> Path:
    """Write ``array_zyx`` (z, y, x) as a mask file the way a user's tool would (size taken from the array:
    x = last axis), replacing a DIR-Lab ``Masks/`` .mhd pair when ``path`` is one."""
    if path.suffix == ".mhd":
        for old in path.parent.glob(f"{path.stem}.*"):
            old.unlink()
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(array_zyx, dtype=np.uint8)))
    image.SetSpacing(tuple(float(s) for s in spacing_xyz))
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))
    return path


def copy_tree(src: Path, dst: Path) -> Path:
    """A private copy (time stamps kept, so Snakemake sees finished jobs as finished)."""
    return Path(shutil.copytree(src, dst, symlinks=True))


# -- what a failed or killed step left behind --------------------------------------------------------------
def files_in(folder: Path) -> list[str]:
    """Every file under ``folder`` (hidden temporary files included), relative, sorted; [] if absent."""
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def wait_for_text(path: Path, pattern: str, proc: subprocess.Popen, timeout: float) -> str:
    """Poll ``path`` until it contains the regex ``pattern``; fail if ``proc`` ends or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        text = path.read_text(errors="replace") if path.is_file() else ""
        if re.search(pattern, text):
            return text
        assert proc.poll() is None, f"ended (code {proc.returncode}) before {pattern!r} appeared:\n{text}"
        assert time.monotonic() < deadline, f"{pattern!r} not in {path} after {timeout} s:\n{text}"
        time.sleep(0.05)


def find_processes(*fragments: str, cwd: Path | None = None) -> list[int]:
    """Ids of live processes whose command line contains every one of ``fragments`` and, with ``cwd``,
    whose working directory is ``cwd`` (to find a job Snakemake started, or to check none is left)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            where = Path(os.readlink(entry / "cwd")) if cwd is not None else None
        except OSError:
            continue
        if state == "Z" or not all(f in cmdline for f in fragments):
            continue
        if cwd is None or where == Path(cwd).resolve():
            found.append(int(entry.name))
    return found


def cpu_seconds(pids: list[int]) -> float:
    """CPU time (user + system, s) the live processes ``pids`` have used so far (gone ones count 0)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # stat fields 14, 15
    return total
