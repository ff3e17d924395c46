"""File I/O: NIfTI/MHA volumes, CSV tables, JSON records and checkpoints, always written atomically.

Every writer writes to a temporary name in the destination folder and renames it into place, so a killed
process never leaves a file that looks complete (Snakemake can then resume cleanly).
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import SimpleITK as sitk


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


class InputError(ValueError):
    """An input file that is missing or does not hold what was expected. The message names the file."""


class OutputError(InputError):
    """An output file that could not be written (full disk, quota, read-only or missing permission). The
    message names the file; nothing was left under its name. A subclass of :class:`InputError` so that every
    command reports it the same way: one line on stderr, exit code 2."""


#: errno values that mean "the file system refused the write": reported as :class:`OutputError`.
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}


def _write_failure(path: Path, exc: OSError) -> OutputError:
    reason = exc.strerror or str(exc)
    hint = ""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        hint = f"; the file system holding {path.parent} is full: free space there and run the step again"
    return OutputError(f"{path}: cannot write ({reason}){hint}; nothing was written under this name")


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it to ``path``, on error delete it.

    ``suffix`` defaults to the full suffix of ``path`` (e.g. ``.nii.gz``) so format-sniffing writers
    such as SimpleITK pick the right format for the temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix is None:
        suffix = "".join(path.suffixes)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600 files; give the result the mode a plain open() would (umask applies), so
        # results stay readable by the group on a shared cluster file system.
        os.chmod(tmp_path, 0o666 & ~_UMASK)
        os.replace(tmp_path, path)
    except OSError as exc:
        tmp_path.unlink(missing_ok=True)
        if exc.errno in _WRITE_ERRNOS:
            raise _write_failure(path, exc) from None
        raise
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON (numpy scalars and arrays converted) atomically."""
    write_text(path, json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n")


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: file not found (expected a JSON record)") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None


def write_csv(path: str | Path, frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def read_csv(path: str | Path, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Read a CSV; if ``columns`` is given, every one must be present (error names file and columns)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found (expected a CSV table)")
    frame = pd.read_csv(path)
    if columns is not None:
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise InputError(
                f"{path}: expected columns {list(columns)}, missing {missing}; found {list(frame.columns)}"
            )
    return frame


def write_image(path: str | Path, image: sitk.Image) -> None:
    """Write a SimpleITK image (format from the extension: .nii.gz, .nii, .mha, .mhd) atomically."""
    path = Path(path)
    if path.suffix == ".mhd":
        # .mhd keeps its voxels in a side-car file named inside the header: two files cannot be renamed
        # into place atomically, so only single-file formats are written.
        raise ValueError(f"{path}: write .nii.gz or .mha (single-file formats) so the write can be atomic")
    with atomic_path(path) as tmp:
        try:
            sitk.WriteImage(image, str(tmp), useCompression=True)
            # ITK's NIfTI writer reports a short write (full disk) on stderr only and returns normally: read
            # the file back before it is renamed into place, so a truncated volume never gets the name.
            if sitk.ReadImage(str(tmp)).GetSize() != image.GetSize():
                raise RuntimeError("the file read back has another size")
        except RuntimeError as exc:
            # Ask the file system why (full disk, quota, read-only), else report ITK's reason.
            probe = _probe_write(tmp.parent)
            if probe is not None:
                raise probe from None
            raise OutputError(
                f"{path}: cannot write the image ({str(exc).strip().splitlines()[-1]}); "
                "nothing was written under this name"
            ) from None


def read_image(path: str | Path) -> sitk.Image:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found (expected an image volume)")
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise InputError(f"{path}: cannot read as an image ({str(exc).strip().splitlines()[-1]})") from None


def array_from_image(image: sitk.Image) -> np.ndarray:
    """Voxel array of an image, shape (z, y, x) (SimpleITK's numpy order)."""
    return sitk.GetArrayFromImage(image)


def save_torch(path: str | Path, obj: Any) -> None:
    """torch.save atomically (used for checkpoints)."""
    import torch

    # Serialised in memory first, then written with a plain file write: torch's own writer reports a full
    # disk as an anonymous RuntimeError, a plain write as OSError(ENOSPC), which names the cause.
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(buffer.getbuffer())


def _probe_write(folder: Path) -> OSError | None:
    """Why ``folder`` refuses writes (an OSError with errno set), or None when a small write succeeds."""
    try:
        with tempfile.TemporaryFile(dir=folder) as handle:
            handle.write(b"\0" * 65536)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        return exc
    return None


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__} to JSON")


def read_image_header(path: str | Path) -> sitk.ImageFileReader:
    """An ImageFileReader of ``path`` with the header read (size, spacing, direction; no voxels yet).

    Raises InputError when the file is missing or not an image SimpleITK reads."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise InputError(f"{path}: cannot read as an image ({str(exc).strip().splitlines()[-1]})") from None
    return reader
