"""The run folder of one registration: what ``rnr register`` writes there, and in which order.

Files (names from rnr/layout.py): ``loss.csv``, ``curve.csv`` (runs with ``curve_every``, rnr/reporting/curves.py),
``landmarks_T00_warped.csv``, ``run.json``, then
``checkpoint.pt`` last, each written atomically (rnr/io.py). The workflow treats the checkpoint as the sign
of a finished run, so a run killed at any point leaves no complete-looking folder. Before a new fit, the
outputs of an earlier one are removed, together with its evaluation (``metrics.json``, ``figures/``): an
evaluation of a map that no longer exists must never reach the tables.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import layout
from ..io import write_csv, write_json
from ..layout import landmark_table
from .transform import Transform

#: What a registration writes, in writing order (the checkpoint last).
RUN_OUTPUTS = (layout.LOSS_CSV, layout.WARPED_LANDMARKS, layout.RUN_JSON, layout.CHECKPOINT)


def clear_run_folder(out_dir: str | Path) -> None:
    """Remove an earlier run's outputs and its evaluation from ``out_dir`` (other files stay)."""
    out_dir = Path(out_dir)
    for name in (*RUN_OUTPUTS, layout.CURVE_CSV, layout.METRICS_JSON):
        (out_dir / name).unlink(missing_ok=True)
    shutil.rmtree(out_dir / layout.FIGURES_DIR, ignore_errors=True)


def write_run_folder(
    out_dir: str | Path,
    transform: Transform,
    log: pd.DataFrame,
    warped_landmarks_vox: np.ndarray,
    record: dict[str, Any],
    checkpoint_metadata: dict[str, Any],
    curve: pd.DataFrame | None = None,
) -> None:
    """Write one run's outputs into ``out_dir`` (module docstring).

    Args:
        transform: the fitted map (saved as the checkpoint, with ``checkpoint_metadata``).
        log: the per-iteration log (loss.csv).
        warped_landmarks_vox: (300, 3) T00 landmarks pushed through the map, 0-based voxels (x, y, z).
        record: the run record (run.json).
        curve: the accuracy curve (curve.csv), or None.
    """
    out_dir = Path(out_dir)
    try:
        write_csv(out_dir / layout.LOSS_CSV, log)
        if curve is not None:
            write_csv(out_dir / layout.CURVE_CSV, curve)
        write_csv(out_dir / layout.WARPED_LANDMARKS, landmark_table(warped_landmarks_vox, transform.spacing_xyz))
        write_json(out_dir / layout.RUN_JSON, record)
        transform.save(out_dir / layout.CHECKPOINT, **checkpoint_metadata)
    except BaseException:
        # A failed later write (a full disk at the checkpoint, a kill) must not leave a partial run folder.
        clear_run_folder(out_dir)
        raise
