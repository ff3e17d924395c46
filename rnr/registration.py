"""Register one case: pick the method from the table, fit it, and write the run folder.

The one entry point behind ``rnr register``: settings in (rnr/config.py), the method's ``fit`` from
:data:`rnr.methods.table.METHODS`, device and versions from rnr/runtime.py, outputs through rnr/fitting/rundir.py.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import runtime
from .config import LoopSettings, Settings
from .data.case import ConvertedCase
from .fitting.rundir import clear_run_folder, write_run_folder
from .fitting.transform import Transform
from .methods.table import METHODS, FitContext
from .reporting.curves import CurveRecorder


@dataclass
class RegistrationResult:
    """The outcome of :func:`register_case`.

    Attributes:
        transform: the fitted map. log: the per-iteration log. record: the run record (run.json).
        warped_landmarks: (300, 3) T00 landmarks pushed through the map, 0-based voxels.
        out_dir: the run folder, or None when nothing was written.
        curve: the accuracy curve (curve.csv, rnr/reporting/curves.py) of a loop method with ``curve_every`` > 0, else
        None.
    """

    transform: Transform
    log: pd.DataFrame
    record: dict[str, Any]
    warped_landmarks: np.ndarray
    out_dir: Path | None
    curve: pd.DataFrame | None = None


def register_case(
    case: ConvertedCase,
    mask: np.ndarray,
    settings: Settings,
    out_dir: str | Path | None = None,
    name: str = "default",
    progress: bool = True,
) -> RegistrationResult:
    """Fit ``settings.method`` to ``case`` on the T00 ``mask`` (nz, ny, nx) and, with ``out_dir``, write the
    run folder (rnr/fitting/rundir.py). ``name`` is the configuration name recorded with the run.

    Raises:
        rnr.fitting.fit.FitError: non-finite loss (nothing written); SettingsError: impossible settings or device.
    """
    total_start = time.perf_counter()
    method = METHODS[settings.method]
    device = runtime.resolve_device(settings.device)
    if out_dir is not None:
        out_dir = Path(out_dir)
        clear_run_folder(out_dir)
    runtime.reset_peak_memory(device)
    label = f"case {case.case} / {name} ({settings.method})"
    # The curve's landmarks stay in the recorder, built here from the case: the method is handed a watcher of
    # its map, nothing it could put into its loss.
    params = settings.params
    recorder = CurveRecorder(case) if isinstance(params, LoopSettings) and params.curve_every > 0 else None
    outcome = method.fit(
        FitContext(case, np.asarray(mask, dtype=bool), settings, device, label, progress, monitor=recorder)
    )
    curve = recorder.frame() if recorder is not None else None
    device = outcome.device or device
    warped = outcome.transform.apply_voxels(case.landmarks("T00"))
    geometry = {"size_xyz": list(case.size_xyz), "spacing_xyz": list(case.spacing_xyz)}
    record: dict[str, Any] = {
        "case": case.case,
        "configuration": name,
        "method": settings.method,
        "settings": settings.to_dict(),
        "device": str(device),
        "device_name": runtime.device_description(device),
        "wall_s": outcome.wall_s,
        "iterations": outcome.iterations,
        "iterations_per_s": outcome.iterations / outcome.wall_s if outcome.wall_s > 0 else None,
        "batch_size": outcome.batch_size,
        "n_points": outcome.n_points,
        "peak_memory_mb": runtime.peak_memory_mb(device),
        "final_loss": float(outcome.log["loss"].iloc[-1]) if len(outcome.log) else None,
        "compared_terms": outcome.compared_terms,
        "intermediate_used": outcome.intermediate_used,
        **outcome.extra,
        **geometry,
        "versions": runtime.package_versions(),
    }
    record["total_s"] = time.perf_counter() - total_start
    if out_dir is not None:
        metadata = {
            "settings": settings.to_dict(),
            "seed": settings.seed,
            "case": case.case,
            "configuration": name,
            "method": settings.method,
            "geometry": geometry,
            "case_dir": str(case.path),
            "device": str(device),
            "compared_terms": outcome.compared_terms,
            **outcome.extra,
        }
        write_run_folder(out_dir, outcome.transform, outcome.log, warped, record, metadata, curve)
    return RegistrationResult(outcome.transform, outcome.log, record, warped, out_dir, curve)
