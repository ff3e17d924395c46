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
    """The one-line error of a failed ``rnr COMMAND``, asserting what the README promises: exit code 2, no
    traceback, and the message is one line (exactly one ``rnr COMMAND: error:`` line, and the last line of
    stderr: a message continued on further lines would follow it)."""
    assert outcome.code != 0, f"rnr {command} succeeded on bad input:\n{outcome.text}"
    assert "Traceback" not in outcome.err, f"rnr {command} crashed instead of a clear error:\n{outcome.err}"
    assert outcome.code == 2, f"rnr {command} failed with exit code {outcome.code}, expected 2:\n{outcome.err}"
    return one_error_line(outcome.err, f"rnr {command}: error:")


def one_error_line(text: str, prefix: str) -> str:
    """The single line of ``text`` starting with ``prefix``, asserting it is the only one and the last
    non-empty line (stderr of a command, or the log of a Snakemake job that ran it)."""
    lines = [line for line in text.replace("\r", "\n").splitlines() if line.strip()]
    errors = [i for i, line in enumerate(lines) if line.startswith(prefix)]
    assert len(errors) == 1, f"expected one {prefix!r} line, found {len(errors)} in:\n{text}"
    assert errors[0] == len(lines) - 1, f"the {prefix!r} message is not one line:\n{text}"
    return lines[errors[0]]


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


# -- damaging a copy of the phantom dataset ----------------------------------------------------------------
def image_file(dataset: Path, case: int, phase: str) -> Path:
    from rnr.data import phantom

    return dataset / phantom.case_folder_name(case) / "Images" / phantom.image_file_name(case, phase)


def landmark_file(dataset: Path, case: int, phase: str) -> Path:
    from rnr.data import phantom

    return dataset / phantom.case_folder_name(case) / phantom.landmark_file_path(case, phase)


def mask_file(dataset: Path, case: int) -> Path:
    from rnr.data import phantom

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


# -- a small file system -----------------------------------------------------------------------------------
@contextlib.contextmanager
def small_file_system(folder: Path, size_kib: int = 4096):
    """A tmpfs of ``size_kib`` KiB mounted at ``folder`` (created) for the duration; unmounted afterwards.

    Needs root (CAP_SYS_ADMIN); raises ``PermissionError`` with the reason when mounting is impossible."""
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kib}k,mode=0755", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise PermissionError(f"cannot mount a tmpfs at {folder}: {done.stderr.strip() or done.returncode}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill_leaving(folder: Path, free_bytes: int) -> Path:
    """Fill the file system of ``folder`` with one file so that about ``free_bytes`` stay free."""
    stat = os.statvfs(folder)
    available = stat.f_bavail * stat.f_frsize
    filler = folder / "filler.bin"
    with open(filler, "wb") as handle:
        handle.write(b"\0" * max(available - free_bytes, 0))
    return filler
