"""Any registration tool by command: ``{method: command, command: "mytool -f {fixed} -m {moving} -o {field}"}``.

For each case the ``command`` template is filled in and run by the shell (``/bin/sh -c``) in the working
directory of ``rnr register`` (in the workflow, Snakemake's). The tool must write a displacement field to
``{field}`` in the contract of ``method: field`` (rnr/methods/field.py): a 3-D image of 3-vectors on the T00
grid (size, spacing, origin and direction of ``{fixed}``), the vector at T00 voxel x being phi(x) - x, the
displacement that carries the T00 point to its T50 position, in millimetres along ITK's physical (LPS) axes.
That is the same convention as an ITK/elastix/ANTs transform that maps ``{fixed}`` points into ``{moving}``
(the transform that warps the moving image onto the fixed one).

**Placeholders** (each value is quoted for the shell):

=================  =================================================================================
``{fixed}``        T00 image of the converted case (NIfTI, HU, direction diag(1, 1, -1), origin 0)
``{moving}``       T50 image, same grid
``{fixed_mask}``   the run's T00 lung mask as a NIfTI (uint8, 1 = lung) on the T00 grid, written for the run
``{field}``        where the tool writes the field (``.nii.gz``), in a temporary folder of the run
``{threads}``      the job's CPU thread count (``register_threads`` in the workflow)
``{case}``         the case number
``{seed}``         the run's seed
=================  =================================================================================

The command also gets ``OMP_NUM_THREADS`` and ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS`` set to ``{threads}``.
Its standard output goes to the job's output; its standard error is captured, copied to the job's error
output, and its last lines are kept in the run record (``command_stderr_tail``) with the exit code
(``command_exit_code``), the command as run (``command_line``) and its wall time (``wall_s``).

**Failures** stop the run with one line naming the case and the command (:class:`rnr.fitting.fit.FitError`;
``rnr register`` exits with 2 and writes nothing): a non-zero exit code (with the last line of its
standard error), a command that runs longer than ``command_timeout_s``, no field written, or a field
``method: field`` rejects (with that check's message: wrong grid, not vectors, not finite, not mm, positions
instead of displacements). The temporary folder is removed in every case.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

from ..config import SettingsError
from ..data.case import ConvertedCase
from ..fitting.fit import FitError
from ..fitting.transform import FieldTransform
from ..io import InputError, read_image_header, write_image
from .base import FitContext, Method, MethodOutcome, pair_outcome
from .field import read_field
from .settings import CommandSettings

#: How much of the command's standard error the run record keeps.
STDERR_TAIL_LINES = 20
STDERR_TAIL_CHARS = 4000


class CommandFieldTransform(FieldTransform):
    """The field an external command wrote (:class:`FieldTransform` under its own checkpoint ``kind``)."""

    kind = "command"


def write_mask(path: Path, mask_zyx: np.ndarray, case: ConvertedCase) -> Path:
    """The (nz, ny, nx) mask as a uint8 NIfTI with the geometry of the case's T00 image."""
    reference = read_image_header(case.image_path("T00"))
    image = sitk.GetImageFromArray(np.asarray(mask_zyx, dtype=np.uint8))
    image.SetSpacing(reference.GetSpacing())
    image.SetOrigin(reference.GetOrigin())
    image.SetDirection(reference.GetDirection())
    write_image(path, image)
    return path


def stderr_tail(text: str) -> str:
    """The last :data:`STDERR_TAIL_LINES` lines of ``text``, at most :data:`STDERR_TAIL_CHARS` characters."""
    tail = "\n".join(text.rstrip().splitlines()[-STDERR_TAIL_LINES:])
    return tail[-STDERR_TAIL_CHARS:]


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(nothing on stderr)"


def run_command(line: str, env: dict[str, str], timeout_s: float, where: str) -> tuple[int, str]:
    """Run ``line`` with ``/bin/sh -c``; return (exit code, standard error). The command runs in its own process
    group so that a timeout (or Ctrl-C) stops everything it started, not only the shell."""
    process = subprocess.Popen(
        line,
        shell=True,
        env=env,
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        start_new_session=True,
    )
    try:
        _, stderr = process.communicate(timeout=timeout_s or None)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        raise FitError(f"{where} did not finish within command_timeout_s = {timeout_s:g} s") from None
    except BaseException:
        _kill_group(process)
        raise
    return process.returncode, stderr


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.communicate()


def fit(ctx: FitContext[CommandSettings]) -> MethodOutcome:
    """Run the command for ``ctx.case`` and read the field it wrote (module docstring)."""
    params = ctx.settings.params
    case = ctx.case
    if not params.command:
        raise SettingsError(
            "setting 'command' is empty: give the command line that writes the field, e.g. "
            'command: "mytool {fixed} {moving} {fixed_mask} {field}"'
        )
    where = f"case {case.case}: command {params.command!r}"
    threads = max(1, torch.get_num_threads())
    with tempfile.TemporaryDirectory(prefix=f"rnr-command-case{case.case}-") as folder:
        values = {
            "fixed": case.image_path("T00").resolve(),
            "moving": case.image_path("T50").resolve(),
            "fixed_mask": write_mask(Path(folder) / "T00_mask.nii.gz", ctx.mask, case),
            "field": Path(folder) / "field.nii.gz",
            "threads": threads,
            "case": case.case,
            "seed": ctx.settings.seed,
        }
        line = params.command.format(**{k: shlex.quote(str(v)) for k, v in values.items()})
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": str(threads)}
        start = time.perf_counter()
        returncode, stderr = run_command(line, env, params.command_timeout_s, where)
        wall = time.perf_counter() - start
        sys.stderr.write(stderr)
        if returncode != 0:
            raise FitError(f"{where} exited with code {returncode}; its stderr ends: {_last_line(stderr)}")
        field_path = Path(values["field"])
        if not field_path.is_file():
            raise FitError(f"{where} exited with code 0 but wrote no field at {{field}} ({field_path})")
        try:
            disp = read_field(field_path, case)
        except InputError as exc:
            raise FitError(f"{where} wrote a field that cannot be used: {exc}") from None
    return pair_outcome(
        ctx,
        CommandFieldTransform(case.size_xyz, case.spacing_xyz, disp).to(ctx.device),
        wall,
        extra={
            "command_line": line,
            "command_exit_code": returncode,
            "command_stderr_tail": stderr_tail(stderr),
        },
    )


METHOD = Method(
    name="command",
    settings=CommandSettings,
    fit=fit,
    transforms=(CommandFieldTransform,),
    summary="any registration tool by command line: it writes an ITK displacement field on the T00 grid (mm)",
)
