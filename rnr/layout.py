"""File names inside a converted case folder and a run folder: the one place that knows them.

Converted case (``rnr convert``), ``results/<dataset>/data/case<N>/``::

    case.json                  case number, size_xyz, spacing_xyz, direction, phases, source files
    T00.nii.gz .. T50.nii.gz   volumes in HU (int16), spacing in mm, DIR-Lab index space (see coords.py)
    landmarks_T00.csv          300 rows; columns of LANDMARK_COLUMNS
    landmarks_T50.csv
    sampled4d_TPP.csv          75 rows per phase TPP in T00..T50 when DIR-Lab's Sampled4D is present
    mask_provided.nii.gz       user-provided T00 lung mask (from Masks/), checked to lie on the T00 grid
    mask_T00.nii.gz            the lung mask used for registration (``rnr segment``)
    truth.npz                  the exact motion, when the dataset carries it (the phantom; rnr/data/truth.py)

Run folder (``rnr register`` / ``rnr evaluate``), ``results/<dataset>/runs/<configuration>/case<N>/seed<S>/``
(``initial``, the identity map, has the one folder ``seed0``)::

    checkpoint.pt              self-describing fitted transform
    loss.csv                   one row per iteration
    landmarks_T00_warped.csv   T00 landmarks pushed through the map (LANDMARK_COLUMNS)
    run.json                   wall time, device, iterations/s, peak memory, settings
    metrics.json               TRE and folding (``rnr evaluate``)
    figures/                   slice panels, loss curve, det J slice
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

from . import coords

#: The configuration name of the identity map ("before registration"), evaluated once per case.
INITIAL = "initial"
#: The seed folder of ``initial`` (the identity has no randomness: one run, recorded as seed 0).
INITIAL_SEED = 0
PHASES = ("T00", "T10", "T20", "T30", "T40", "T50")
LANDMARK_COLUMNS = ("x_vox", "y_vox", "z_vox", "x_mm", "y_mm", "z_mm")

CASE_JSON = "case.json"
MASK_PROVIDED = "mask_provided.nii.gz"
MASK_T00 = "mask_T00.nii.gz"
#: The exact motion of a case whose dataset carries it (the phantom's truth/case<N>.npz, copied by convert).
TRUTH = "truth.npz"
#: Where a DIR-Lab-layout dataset keeps such truth files, relative to its folder.
TRUTH_SOURCE = "truth/case{case}.npz"

CHECKPOINT = "checkpoint.pt"
LOSS_CSV = "loss.csv"
#: The accuracy curve of a loop run with curve_every (rnr/reporting/curves.py).
CURVE_CSV = "curve.csv"
# The studies' folders of the results tree: ablation/<sweep>/ (rnr ablation) and curves/ (rnr curves).
ABLATION_DIR = "ablation"
ABLATION_FIGURE = "ablation.png"
CURVES_DIR = "curves"
CURVES_FIGURE = "curves.png"
CURVE_POINTS = "curve_points.csv"
WARPED_LANDMARKS = "landmarks_T00_warped.csv"
RUN_JSON = "run.json"
METRICS_JSON = "metrics.json"
FIGURES_DIR = "figures"
#: The dataset figures of ``rnr figures`` (file stems) in reading order: the answer first (mean TRE per
#: configuration and the paired tests, exact before file landmarks), then the detail behind it, then cost and
#: convergence. The report lists them in this order.
FIGURE_ORDER = (
    "tre_mean_per_configuration",
    "paired_differences_exact",
    "paired_differences",
    "tre_before_after",
    "tre_distribution",
    "tre_seed_spread",
    "folding_runtime",
    "loss_curves",
)

# An export folder (``rnr export``): the ITK displacement field, det J, and export.json (written last).
FIELD = "field.nii.gz"
DETJ = "detj.nii.gz"
MANIFEST = "export.json"


def image_name(phase: str) -> str:
    """``T00`` -> ``T00.nii.gz``."""
    _check_phase(phase)
    return f"{phase}.nii.gz"


def landmarks_name(phase: str) -> str:
    """300-point landmark CSV for ``T00`` or ``T50``."""
    if phase not in ("T00", "T50"):
        raise ValueError(f"the 300 DIR-Lab landmarks exist for T00 and T50 only, not {phase!r}")
    return f"landmarks_{phase}.csv"


def sampled4d_name(phase: str) -> str:
    """75-point Sampled4D landmark CSV for one phase T00..T50."""
    _check_phase(phase)
    return f"sampled4d_{phase}.csv"


def landmark_table(points_vox: np.ndarray, spacing_xyz: Sequence[float]) -> pd.DataFrame:
    """(P, 3) 0-based voxel points (x, y, z) -> the landmark CSV table (:data:`LANDMARK_COLUMNS`; mm = index0 *
    spacing, coords.py). Converted cases and warped landmarks are written in this one form."""
    import pandas as pd  # here, not at the top: the workflow reads this module at parse time

    vox = np.asarray(points_vox, dtype=np.float64)
    mm = coords.voxel_to_mm(vox, spacing_xyz)
    return pd.DataFrame(np.concatenate([vox, mm], axis=1), columns=list(LANDMARK_COLUMNS))


def sortable_number(number: int | str, largest: int) -> str:
    """``number`` as text that sorts like the number among 0..``largest``: zero-padded to the width of
    ``largest`` (the Snakemake report sorts its labels as text: case 10 would come between 1 and 2)."""
    return str(int(number)).zfill(len(str(int(largest))))


def dataset_dir(results: str | Path, dataset: str) -> Path:
    """``<results>/<dataset>``: everything one dataset's workflow writes."""
    return Path(results) / dataset


def case_dir(results: str | Path, dataset: str, case: int | str) -> Path:
    """A converted case folder (``case`` may be the wildcard text ``{case}``)."""
    return dataset_dir(results, dataset) / "data" / f"case{case}"


def run_dir(results: str | Path, dataset: str, configuration: str, case: int | str, seed: int | str) -> Path:
    """The run folder of one case x configuration x seed (wildcard texts allowed, as for :func:`case_dir`)."""
    return dataset_dir(results, dataset) / "runs" / configuration / f"case{case}" / f"seed{seed}"


def settings_file(results: str | Path, dataset: str, configuration: str) -> Path:
    """The settings file the workflow writes for one configuration (``rnr register --settings``)."""
    return dataset_dir(results, dataset) / "settings" / f"{configuration}.yaml"


def export_dir(results: str | Path, dataset: str, configuration: str, case: int | str, seed: int | str) -> Path:
    """Where the workflow's ``export`` target writes one run's export (wildcard texts allowed)."""
    return dataset_dir(results, dataset) / "export" / configuration / f"case{case}" / f"seed{seed}"


def tables_dir(results: str | Path, dataset: str) -> Path:
    return dataset_dir(results, dataset) / "tables"


def figures_dir(results: str | Path, dataset: str) -> Path:
    return dataset_dir(results, dataset) / "figures"


def _check_phase(phase: str) -> None:
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {', '.join(PHASES)}, got {phase!r}")
