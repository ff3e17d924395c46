"""The studies' tables: the ablation table of one sweep (rnr/methods/sweeps.py), one row per value, the base first;
and the accuracy-against-budget table of every configuration (rnr/reporting/curves.py).

Built from the same collected data as the main tables (:func:`rnr.reporting.tables.collect` on the base and the
sweep's configurations, the base as the reference of the paired tests, so Holm corrects over the sweep's
rows): the mean over cases of each case's seed-averaged TRE with its bootstrap interval over cases, the exact
TRE where the dataset carries its motion, folding, SDlogJ, runtime, and the across-case paired test against
the base (on the exact TRE where it exists, else on the file landmarks). Drawn by rnr/reporting/table_render.py in the
four formats of :data:`rnr.reporting.table_specs.ABLATION`; the figure comes from rnr/reporting/sweep_plots.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..io import write_csv, write_text
from ..layout import ABLATION_FIGURE, CURVE_POINTS, CURVES_FIGURE
from ..methods.sweeps import Sweep, value_text
from . import table_render
from .curves import budget_frame
from .results import run_frame
from .table_render import Block, Cell, View
from .table_specs import ABLATION, BUDGET, CSV, HTML, LATEX, MARKDOWN, Column, Table, with_columns
from .tables import TRE, TRE_EXACT_VALUE, TableData, collect

BASE_VALUE = "base"


def _page_columns(table: Table) -> tuple[Column, ...]:
    """A study table's page columns: the configuration column shows the display label, so no ``label`` column."""
    return tuple(c for c in table.page_columns if c.name != "label")


def row_values(sweep: Sweep) -> list[tuple[str, str]]:
    """(configuration, value text) of every row: the base first (its own value where the sweep lists it,
    else ``base``), then the sweep's other rows in their order."""
    texts = {r.configuration: " ".join(f"{k}={value_text(v)}" for k, v in r.values.items()) for r in sweep.rows}
    rows = [(sweep.base, texts.get(sweep.base, BASE_VALUE))]
    return rows + [(c, t) for c, t in texts.items() if c != sweep.base]


def ablation_frame(data: TableData, sweep: Sweep) -> pd.DataFrame:
    """The CSV frame of :data:`ABLATION` (columns in its order; module docstring)."""
    summary = data.summary
    ci = data.intervals.set_index("configuration")
    tested = TRE_EXACT_VALUE if data.has_truth else TRE
    tests = data.tests
    if tests is not None:
        tests = tests[(tests["scope"] == "all") & (tests["value"] == tested)].set_index("configuration")
    rows = []
    for config, value in row_values(sweep):
        part = summary[summary["configuration"] == config]
        has = config in ci.index

        def interval(column: str, _config=config, _has=has) -> float:
            return float(ci.loc[_config, column]) if _has and column in ci.columns else np.nan

        test = tests.loc[config] if tests is not None and config in tests.index else None
        rows.append(
            {
                "configuration": config,
                "value": value,
                "n_cases": int(part["case"].nunique()),
                "n_seeds": int(part["n_seeds"].max()) if "n_seeds" in part and len(part) else 0,
                "tre_mean_mm": interval("tre_mean_mm"),
                "tre_ci_low_mm": interval("tre_mean_ci_low_mm"),
                "tre_ci_high_mm": interval("tre_mean_ci_high_mm"),
                "tre_exact_mean_mm": interval("tre_exact_mean_mm"),
                "tre_exact_ci_low_mm": interval("tre_exact_mean_ci_low_mm"),
                "tre_exact_ci_high_mm": interval("tre_exact_mean_ci_high_mm"),
                "folding_percent": 100.0 * float(part["folding_fraction"].astype(float).mean()),
                "sdlogj": float(part["sdlogj"].astype(float).mean()),
                "runtime_s": float(part["runtime_s"].astype(float).mean()),
                "tested": tested,
                "median_diff_mm": np.nan if test is None else float(test["median_diff_mm"]),
                "p_holm": np.nan if test is None else float(test["p_holm"]),
                "label": data.label(config),
            }
        )
    return pd.DataFrame(rows, columns=list(ABLATION.names))


def ablation_view(frame: pd.DataFrame, data: TableData, sweep: Sweep) -> View:
    """The page view: the page columns of :data:`ABLATION`, intervals in the TRE cells, the lowest TRE bold."""
    columns = _page_columns(ABLATION)
    best = {
        name: frame[name].min(skipna=True) for name in ("tre_mean_mm", "tre_exact_mean_mm") if frame[name].notna().any()
    }
    rows = []
    for record in frame.to_dict("records"):
        cells = []
        for column in columns:
            value = record[column.name]
            if column.name in ("tre_mean_mm", "tre_exact_mean_mm"):
                stem = column.name.removesuffix("_mean_mm")
                spread = (record[f"{stem}_ci_low_mm"], record[f"{stem}_ci_high_mm"])
                cells.append(Cell(value, spread, bold=bool(column.name in best and value == best[column.name])))
            else:
                cells.append(Cell(value))
        rows.append(cells)
    keys = ", ".join(sweep.keys)
    title = f"Ablation `{sweep.name}`: {keys} of {data.label(sweep.base)}"
    notes = [
        "Rows: the base configuration, then each value of the sweep. TRE: mean over cases of each case's mean TRE "
        "(landmarks averaged over seeds first) with a 95 % bootstrap interval over cases; exact TRE on the "
        "phantom's exact landmark positions; folding: % of T00-mask voxels with det J <= 0; time: registration "
        f"wall time per case. Δ vs base and p: Wilcoxon on the paired case means of `{frame['tested'].iloc[0]}` "
        "against the base, Holm-corrected over the sweep's rows (n/a with fewer than two cases or for the base).",
    ]
    return View(with_columns(ABLATION, columns), title, [Block(rows)], notes, data.labels, f"tab:ablation-{sweep.name}")


def seed_frame(runs_dir: str | Path, sweep: Sweep) -> pd.DataFrame:
    """Per (configuration, seed): the mean over cases of the TRE (and exact TRE), for the figure's seed spread."""
    from .results import load_metrics

    configs = [c for c, _ in row_values(sweep)]
    runs = run_frame(load_metrics(runs_dir, configs), configs)
    return (
        runs.groupby(["configuration", "seed"], sort=False)[["tre_mean_mm", "tre_exact_mean_mm"]].mean().reset_index()
    )


def write_ablation(runs_dir: str | Path, out_dir: str | Path, sweep: Sweep, labels: dict[str, str]) -> list[Path]:
    """Write the ablation table of ``sweep`` (four formats) and its figure into ``out_dir``; return the paths."""
    from .sweep_plots import ablation_figure

    configs = [c for c, _ in row_values(sweep)]
    data = collect(runs_dir, configs, sweep.base, labels)
    frame = ablation_frame(data, sweep)
    view = ablation_view(frame, data, sweep)
    out = Path(out_dir)
    written = write_table(frame, view, out)
    written += ablation_figure(frame, seed_frame(runs_dir, sweep), sweep, out / ABLATION_FIGURE)
    return written


# -- the accuracy-against-budget table ----------------------------------------------------------------------
def write_budget(
    runs_dir: str | Path, out_dir: str | Path, order: list[str] | None, labels: dict[str, str]
) -> list[Path]:
    """Write the budget table (four formats), every point of every run's curve (``curve_points.csv``) and the
    curves figure into ``out_dir``; return the paths."""
    from .curves import curve_frame
    from .sweep_plots import curves_figure

    curves = curve_frame(runs_dir, order)
    frame = budget_frame(curves, order).assign(label=lambda f: f["configuration"].map(lambda c: labels.get(c, c)))
    columns = _page_columns(BUDGET)
    rows = [[Cell(record[c.name]) for c in columns] for record in frame.to_dict("records")]
    value = frame["value"].iloc[0] if len(frame) else "tre_mm"
    notes = [
        f"TRE: `{value}`, mean over cases (seeds averaged first). TRE @f: the first point recorded at or after the "
        "fraction f of the iterations (n/a for a method without a curve: one point, its final TRE after its "
        "runtime). Time: fitting seconds, the recording's own time excluded. Time to 5 %: until the TRE first "
        "came within 5 % of the run's final TRE."
    ]
    view = View(with_columns(BUDGET, columns), "Accuracy against budget", [Block(rows)], notes, labels, "tab:budget")
    out = Path(out_dir)
    written = write_table(frame, view, out)
    write_csv(out / CURVE_POINTS, curves)
    written.append(out / CURVE_POINTS)
    written += curves_figure(curves, out / CURVES_FIGURE, labels)
    return written


def write_table(frame: pd.DataFrame, view: View, out: Path) -> list[Path]:
    """A study table in each of its formats: the CSV from ``frame`` (its spec's columns), the pages from ``view``."""
    table = {ABLATION.name: ABLATION, BUDGET.name: BUDGET}[view.table.name]
    written = []
    for fmt in table.formats:
        path = out / table.file(fmt)
        if fmt == CSV:
            table_render.csv(table, frame, path)
        else:
            write_text(path, _page(view, fmt))
        written.append(path)
    return written


def _page(view: View, fmt: str) -> str:
    if fmt == MARKDOWN:
        return table_render.markdown(view)
    if fmt == LATEX:
        return table_render.latex(view)
    if fmt == HTML:
        return table_render.html(view, view.title)
    raise ValueError(f"{view.table.name}: unknown page format {fmt!r}")
