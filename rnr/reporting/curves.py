"""Accuracy against budget: the curve of one fit (``curve.csv``) and the curves of every run.

**Recording.** A loop-based method (rnr.fitting.fit.optimise) with ``curve_every: K`` shows its current map to a
:class:`CurveRecorder` after every K-th Adam step and after the last. The recorder is built by
rnr/registration.py from the converted case, outside the method: it holds the landmarks (and the exact
motion where the dataset carries one) and scores each map it is shown; the method's objective is never
given it, so the landmarks cannot reach the loss. Rows of ``curve.csv``:

* ``iteration``: Adam steps done (the map after that many steps);
* ``elapsed_s``: fitting seconds up to then, the recording's own time excluded;
* ``loss``: the loss of that iteration's batch (evaluated before its step, as ``loss.csv``);
* ``tre_mm``: mean TRE over the landmark file pairs T00 -> T50 (the same function as ``rnr evaluate``'s
  ``tre_mean_mm``, so the last row equals the run's final TRE);
* ``tre_exact_mm``: mean TRE on the exact landmark positions (datasets with their motion; else empty);
* ``record_s``: seconds this row's scoring took (their sum is ``curve_s`` in ``run.json``).

**Reading.** :func:`curve_frame` gathers every run's curve into one tidy frame; a run without a curve (a
method without a loop: demons, identity, field; or a loop run without ``curve_every``) contributes one point,
its final TRE after its whole runtime (from ``metrics.json``). :func:`budget_frame` is the table of TRE at
fixed fractions of the budget and the time to come within 5 % of the final TRE.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..data.case import ConvertedCase
from ..data.truth import load_case_truth
from ..evaluation import metrics
from ..fitting.transform import Transform
from ..io import InputError, read_csv
from ..layout import CURVE_CSV, INITIAL
from .results import configuration_order, load_metrics, run_frame

CURVE_COLUMNS = ("iteration", "elapsed_s", "loss", "tre_mm", "tre_exact_mm", "record_s")
#: Fractions of the iteration budget at which the budget table reads the curve.
FRACTIONS = (0.1, 0.25, 0.5)
#: "Within 5 %": the first recorded point whose TRE is at most (1 + WITHIN) x the run's final TRE.
WITHIN = 0.05


class CurveRecorder:
    """Scores the map shown to it (rnr.fitting.fit.Monitor) against one case's landmarks; :meth:`frame` is curve.csv.

    Args:
        case: the converted case: its T00/T50 landmark files (0-based voxels) and, where present, its exact
            motion (rnr/data/truth.py).
    """

    def __init__(self, case: ConvertedCase):
        self.source, self.target = case.landmarks("T00"), case.landmarks("T50")
        self.spacing_xyz = case.spacing_xyz
        truth = load_case_truth(case)
        self.exact = None if truth is None else (truth.landmarks["T00"], truth.landmarks["T50"])
        self.rows: list[dict[str, float]] = []

    def __call__(self, iteration: int, transform: Transform, loss: float, elapsed_s: float) -> None:
        start = time.perf_counter()
        tre = metrics.landmark_tre(transform, self.source, self.target, self.spacing_xyz).continuous.mean_mm
        exact = math.nan
        if self.exact is not None:
            # As rnr.evaluation.truth.exact_metrics: the transform's own spacing.
            exact = metrics.landmark_tre(transform, *self.exact, transform.spacing_xyz).continuous.mean_mm
        self.rows.append(
            {
                "iteration": iteration,
                "elapsed_s": elapsed_s,
                "loss": loss,
                "tre_mm": tre,
                "tre_exact_mm": exact,
                "record_s": time.perf_counter() - start,
            }
        )

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=list(CURVE_COLUMNS))


# -- reading -------------------------------------------------------------------------------------------------
def read_curve(path: str | Path) -> pd.DataFrame:
    """One ``curve.csv``, checked: its columns and at least one row."""
    frame = read_csv(path)
    missing = [c for c in CURVE_COLUMNS if c not in frame.columns]
    if missing or frame.empty:
        raise InputError(
            f"{path}: expected a curve with columns {', '.join(CURVE_COLUMNS)} and at least one row; found "
            f"columns {list(frame.columns)} and {len(frame)} rows"
        )
    return frame


def curve_frame(runs_dir: str | Path, order: Sequence[str] | None = None) -> pd.DataFrame:
    """Every run's curve (``initial`` left out), one row per recorded point.

    Columns: ``configuration``, ``case``, ``seed``, ``method``, ``iteration``, ``iterations`` (the run's
    budget), ``fraction`` (iteration / iterations), ``elapsed_s``, ``tre_mm``, ``tre_exact_mm``,
    ``recorded`` (False: the one point of a run without a curve).
    """
    records = [r for r in load_metrics(runs_dir, order) if r["configuration"] != INITIAL]
    runs = run_frame(records, order)
    parts = []
    for record, run in zip(sorted(records, key=_key(runs)), runs.itertuples(index=False), strict=True):
        path = Path(record["_path"]).parent / CURVE_CSV
        budget = run.iterations if run.iterations is not None and not pd.isna(run.iterations) else math.nan
        if path.is_file():
            curve = read_curve(path)
            points = pd.DataFrame(
                {
                    "iteration": curve["iteration"],
                    "elapsed_s": curve["elapsed_s"],
                    "tre_mm": curve["tre_mm"],
                    "tre_exact_mm": curve["tre_exact_mm"],
                    "recorded": True,
                }
            )
        else:
            points = pd.DataFrame(
                {
                    "iteration": [budget],
                    "elapsed_s": [run.runtime_s],
                    "tre_mm": [run.tre_mean_mm],
                    "tre_exact_mm": [run.tre_exact_mean_mm],
                    "recorded": [False],
                }
            )
        points.insert(0, "method", run.method)
        points.insert(0, "seed", run.seed)
        points.insert(0, "case", run.case)
        points.insert(0, "configuration", run.configuration)
        points["iterations"] = budget
        points["fraction"] = points["iteration"] / budget if budget and budget > 0 else math.nan
        parts.append(points)
    columns = ["configuration", "case", "seed", "method", "iteration", "iterations", "fraction", "elapsed_s"]
    if not parts:
        return pd.DataFrame(columns=[*columns, "tre_mm", "tre_exact_mm", "recorded"])
    frame = pd.concat(parts, ignore_index=True)
    return frame[[*columns, "tre_mm", "tre_exact_mm", "recorded"]]


def _key(runs: pd.DataFrame):
    """Sort records in run_frame's row order (configuration order, case, seed)."""
    rank = {(r.configuration, r.case, r.seed): i for i, r in enumerate(runs.itertuples(index=False))}
    return lambda rec: rank[(rec["configuration"], int(rec["case"]), int(rec["_seed"]))]


def curve_value(curves: pd.DataFrame) -> str:
    """The TRE the budget views use: ``tre_exact_mm`` where every point has it (the phantom), else ``tre_mm``."""
    if len(curves) and curves["tre_exact_mm"].notna().all():
        return "tre_exact_mm"
    return "tre_mm"


# -- the budget table --------------------------------------------------------------------------------------
def run_budget(curve: pd.DataFrame, value: str) -> dict[str, Any]:
    """One run's budget figures from its points (ordered by iteration): TRE at each of :data:`FRACTIONS` (the
    first recorded point at or after that fraction of the iterations; NaN for a run with one point), the final
    TRE and time, and the fitting time of the first point within :data:`WITHIN` of the final TRE."""
    curve = curve.sort_values("iteration", kind="stable")
    final = float(curve[value].iloc[-1])
    row: dict[str, Any] = {}
    for f in FRACTIONS:
        at = curve[curve["recorded"] & (curve["fraction"] >= f - 1e-12)]
        row[_fraction_column(f)] = float(at[value].iloc[0]) if len(at) and len(curve) > 1 else math.nan
    row["tre_final_mm"] = final
    row["time_final_s"] = float(curve["elapsed_s"].iloc[-1])
    within = curve[curve[value] <= (1.0 + WITHIN) * final]
    row["time_within_5pct_s"] = float(within["elapsed_s"].iloc[0])
    row["iteration_within_5pct"] = float(within["iteration"].iloc[0])
    return row


def _fraction_column(f: float) -> str:
    return f"tre_at_{round(100 * f)}pct_mm"


BUDGET_VALUE_COLUMNS = (
    *(_fraction_column(f) for f in FRACTIONS),
    "tre_final_mm",
    "time_final_s",
    "time_within_5pct_s",
    "iteration_within_5pct",
)


def budget_frame(curves: pd.DataFrame, order: Sequence[str] | None = None) -> pd.DataFrame:
    """The budget table: one row per configuration, each number the mean over cases of the per-run figures
    (:func:`run_budget`) averaged over seeds first. Columns ``configuration``, ``method``, ``value`` (the TRE
    used, :func:`curve_value`), ``n_cases``, ``iterations`` (mean budget), ``points`` (recorded points per
    run, mean), then :data:`BUDGET_VALUE_COLUMNS`."""
    value = curve_value(curves)
    rows = []
    for (config, case, seed), part in curves.groupby(["configuration", "case", "seed"], sort=False):
        rows.append(
            {
                "configuration": config,
                "case": case,
                "seed": seed,
                "method": part["method"].iloc[0],
                "iterations": part["iterations"].iloc[0],
                "points": len(part),
                **run_budget(part, value),
            }
        )
    columns = ["configuration", "method", "value", "n_cases", "iterations", "points", *BUDGET_VALUE_COLUMNS]
    if not rows:
        return pd.DataFrame(columns=columns)
    runs = pd.DataFrame(rows)
    numeric = ["iterations", "points", *BUDGET_VALUE_COLUMNS]
    per_case = runs.groupby(["configuration", "case"], sort=False)[numeric].mean().reset_index()
    out = per_case.groupby("configuration", sort=False)[numeric].mean()
    out["n_cases"] = per_case.groupby("configuration", sort=False)["case"].nunique()
    out["method"] = runs.groupby("configuration", sort=False)["method"].first()
    out = out.reset_index().assign(value=value)
    ranked = configuration_order(out["configuration"].tolist(), order)
    out = out.set_index("configuration").loc[ranked].reset_index()
    return out[columns]


def mean_curves(curves: pd.DataFrame, value: str) -> pd.DataFrame:
    """Per configuration and recorded iteration: the mean over cases (seeds averaged first) of ``value`` and of
    the fitting time, and the spread over cases (std, ddof = 1; NaN for one case). Columns ``configuration``,
    ``iteration``, ``elapsed_s``, ``mean``, ``std``, ``n_cases``, ``recorded``."""
    per_case = (
        curves.groupby(["configuration", "iteration", "case"], sort=False)
        .agg(value=(value, "mean"), elapsed_s=("elapsed_s", "mean"), recorded=("recorded", "all"))
        .reset_index()
    )
    out = (
        per_case.groupby(["configuration", "iteration"], sort=False)
        .agg(
            elapsed_s=("elapsed_s", "mean"),
            mean=("value", "mean"),
            std=("value", lambda v: float(np.std(v, ddof=1)) if len(v) > 1 else math.nan),
            n_cases=("case", "nunique"),
            recorded=("recorded", "all"),
        )
        .reset_index()
    )
    return out.sort_values(["configuration", "iteration"], kind="stable").reset_index(drop=True)
