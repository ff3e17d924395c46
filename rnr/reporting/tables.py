"""Fill every table of rnr/reporting/table_specs.py from the collected runs (rnr/reporting/results.py) and write it.

Outputs in ``<out_dir>``: :data:`~rnr.reporting.table_specs.TABLES` (results/README.md explains every file and column).
This module decides what each table holds: the rows, the cells, the markers of the paired tests
(rnr/reporting/table_marks.py), the notes and the provenance (rnr/reporting/provenance.py);
rnr/reporting/table_render.py draws them.

The paired tests (rnr.reporting.stats.paired_tests against the reference configuration) run on the file-landmark TRE
(``tre_mm``) and, where the dataset carries its exact motion, on the exact per-landmark TRE (``tre_exact_mm``);
``stats.csv`` holds both, its ``value`` column says which. ``tre.md`` is marked from the first, ``tre_exact.md``
from the second.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..data import DATASETS
from ..io import write_text
from ..layout import INITIAL
from . import stats, table_render
from .provenance import provenance_lines
from .results import (
    configuration_order,
    configurations_frame,
    exact_landmark_frame,
    load_metrics,
    per_landmark_frame,
    summary_frame,
)
from .table_marks import MARK_NOT_CONVERGED, REFERENCE_MARK, bold_mask, legend_text, markers, not_converged_mark
from .table_render import Block, Cell, View
from .table_specs import (
    CONFIGURATIONS,
    CSV,
    FOLDING,
    HTML,
    HTML_TABLES,
    LATEX,
    MARKDOWN,
    STATS,
    TABLE_SPECS,
    TABLES,
    TRE_EXACT,
    TRE_EXACT_LANDMARKS,
    TRE_LANDMARKS,
    TRE_SNAPPED,
    TRE_SUMMARY,
    TRE_THESIS,
    Table,
    configuration_column,
    with_columns,
)

__all__ = ["HTML_TABLES", "TABLES", "TableData", "collect", "write_tables"]

ALPHA = 0.05
BOOTSTRAP_SEED = 0
N_BOOT = 10000
#: The values the paired tests compare: the file landmarks, and the exact positions where known.
TRE, TRE_EXACT_VALUE = "tre_mm", "tre_exact_mm"


@dataclass
class TableData:
    """Everything the tables show: the pooled summary, the configurations, the paired tests (both values), the
    mean rows' intervals, the tidy per-landmark frames and the configurations' display labels."""

    summary: pd.DataFrame
    configurations: pd.DataFrame
    tests: pd.DataFrame | None
    reference: str | None
    intervals: pd.DataFrame
    landmarks: pd.DataFrame = field(default_factory=pd.DataFrame)
    exact_landmarks: pd.DataFrame = field(default_factory=pd.DataFrame)
    labels: dict[str, str] = field(default_factory=dict)
    dataset: str = ""

    @property
    def has_truth(self) -> bool:
        return bool(len(self.summary)) and bool(self.summary["tre_exact_mean_mm"].notna().all())

    def label(self, configuration: str) -> str:
        return self.labels.get(configuration, configuration)


def collect(
    runs_dir: str | Path,
    order: Sequence[str] | None = None,
    compare_to: str | None = None,
    labels: dict[str, str] | None = None,
    dataset: str = "",
) -> TableData:
    """Read the runs and compute every table's data (``dataset``: its name, for the LaTeX captions and labels)."""
    records = load_metrics(runs_dir, order)
    summary = summary_frame(records, order)
    landmarks = per_landmark_frame(records, order)
    exact = exact_landmark_frame(records, order)
    configurations = configurations_frame(records, order)
    registered = [c for c in configuration_order(summary["configuration"].tolist(), order) if c != INITIAL]
    reference = compare_to if compare_to in registered else (registered[0] if registered else None)
    tests = None
    if reference is not None and len(registered) > 1:
        others = [c for c in registered if c != reference]
        parts = [stats.paired_tests(landmarks, reference, others, alpha=ALPHA, value=TRE)]
        if not exact.empty:  # one Holm family per value: each call corrects its own tests
            parts.append(stats.paired_tests(exact, reference, others, alpha=ALPHA, value=TRE_EXACT_VALUE))
        tests = pd.concat(parts, ignore_index=True)
    intervals = stats.mean_over_cases(summary, n_boot=N_BOOT, seed=BOOTSTRAP_SEED)
    if summary["tre_exact_mean_mm"].notna().all():
        exact_intervals = stats.mean_over_cases(
            summary, n_boot=N_BOOT, seed=BOOTSTRAP_SEED, column="tre_exact_mean_mm"
        ).drop(columns=["n_cases", "ci_method", "confidence", "n_boot", "boot_seed"])
        intervals = intervals.merge(exact_intervals, on="configuration")
    return TableData(
        summary, configurations, tests, reference, intervals, landmarks, exact, dict(labels or {}), dataset
    )


# -- thesis tables: cases as rows, configurations as columns ----------------------------------------------
def conventions_text(summary: pd.DataFrame, snapped: bool) -> str:
    """The note stating what every number in a TRE table means."""
    n = sorted(summary["n_landmarks"].dropna().astype(int).unique())
    n_text = f"the {n[0]} landmarks" if len(n) == 1 else "the landmarks"
    seeds = sorted(summary.loc[summary["configuration"] != INITIAL, "n_seeds"].dropna().astype(int).unique())
    seed_text = (
        f", each landmark's TRE averaged over the {seeds[0]} seeds of the configuration first"
        if seeds and max(seeds) > 1
        else ""
    )
    kind = (
        "snapped TRE: each mapped landmark rounded to the nearest voxel before measuring (numpy.round)"
        if snapped
        else "continuous TRE: mapped landmarks used as is, no rounding"
    )
    interval = (
        "no interval (the continuous TRE table `tre` has them)"
        if snapped
        else f"with a 95 % bootstrap interval over cases (seed {BOOTSTRAP_SEED}, {N_BOOT} resamples; CI in LaTeX)"
    )
    return (
        f"TRE in mm, {kind}. Landmarks in 0-based voxel indices, mm = index x spacing per axis (x, y, z). "
        f"Cells: mean ± std over {n_text} of one case{seed_text}, std with ddof = 1. Mean row: mean over cases "
        f"of the per-case means, {interval}. `{INITIAL}`: identity map (no registration). Bold: lowest mean "
        f"among the registered configurations in that row (not `{INITIAL}`; only when at least two are compared). "
        f"{NOT_CONVERGED_RULE}"
    )


#: The rule of ‡ in full, in the columns of tre.csv that reproduce it (rnr/evaluation/convergence.py).
NOT_CONVERGED_RULE = (
    f"{MARK_NOT_CONVERGED}: a run of that cell had not converged: over its last 10 % of iterations the loss still "
    "fell by more than 1 % of its decrease so far and by more than 3 standard errors of the mini-batch noise "
    "(`tre.csv`: `loss_relative_drop` > 0.01 and `loss_noise_z` > 3; with several seeds, in any seed's run)."
)
EXACT_NOTE = (
    "The primary TRE table of this dataset. Exact TRE: the map applied to the exact (unrounded) T00 landmark "
    "positions of the known motion, against their exact T50 positions; mean ± std over the landmarks (ddof = 1); "
    f"mean row: mean over cases, CI: 95 % bootstrap interval over cases (seed {BOOTSTRAP_SEED}, {N_BOOT} "
    "resamples). Dense error: RMS of |φ(x) − φ_true(x)| over every T00 lung-mask voxel, mm. No rounding floor: "
    "the true motion scores 0. With several seeds, means over seeds. Bold: lowest mean of the row among the "
    f"registered configurations (not `{INITIAL}`)."
)
NO_TRUTH = "This dataset carries no exact motion (real data): the landmark tables (tre.md) are the reference."
#: tre.md / tre.tex where exact motion exists: the table has a floor and is not the primary one.
FLOOR_NOTE = (
    "Not the primary table of this dataset: its landmark files hold whole-voxel positions, so every TRE here "
    "has a floor from rounding (each file landmark lies up to half a voxel per axis from its true position, "
    "and even the exact motion scores above 0 mm); differences below that floor do not rank the methods. "
    "The primary table is `tre_exact` (TRE on the exact, unrounded positions, with its own paired tests)."
)
PRIMARY_NOTE = "The primary TRE table of this dataset (it carries no exact motion)."


def thesis_table(table: Table, configs: Sequence[str], data: TableData, tested: bool = False) -> Table:
    """The table's columns for this run: ``case``, then one column per configuration (heading: its label; with
    ``tested``, the reference of the paired tests is headed '<label> (ref.)')."""

    def heading(c: str) -> str:
        label = data.labels.get(c, "")
        return (label or c) + REFERENCE_MARK if tested and c == data.reference else label

    return with_columns(table, (*table.columns, *(configuration_column(c, heading(c)) for c in configs)))


def latex_label(data: TableData, spec: Table) -> str:
    """``tab:<dataset>-<stem>``: tables of two datasets in one thesis keep distinct labels."""
    stem = spec.stem.replace("_", "-")
    return f"tab:{data.dataset}-{stem}" if data.dataset else f"tab:{stem}"


def _case_block(
    data: TableData,
    configs: list[str],
    mean_col: str,
    std_col: str | None,
    marks: dict,
    interval: str | None,
    converged: bool,
    heading: str | None = None,
) -> Block:
    """Rows (case, then a cell per configuration) and the mean row of one value of the summary.

    ``marks``: table_marks.markers of the tests on this value ({} for none); ``interval``: the stem of the
    mean row's interval columns in ``data.intervals`` (None: no interval); ``converged``: append ‡ to cells
    whose runs had not converged."""
    summary = data.summary
    table = summary.set_index(["case", "configuration"])
    rows = []
    for case in sorted(summary["case"].unique()):
        means = [float(table.loc[(case, c), mean_col]) for c in configs]
        bold = bold_mask(means, configs)
        cells = [Cell(int(case))]
        for c, mean, b in zip(configs, means, bold, strict=True):
            row = table.loc[(case, c)]
            mark = marks.get((int(case), c), "") + (not_converged_mark(row.get("converged")) if converged else "")
            cells.append(Cell(mean, None if std_col is None else float(row[std_col]), mark, b))
        rows.append(cells)
    means = summary.groupby("configuration")[mean_col].mean()
    ci = data.intervals.set_index("configuration")
    values = [float(means[c]) for c in configs]
    cells = [Cell("mean")]
    for c, mean, b in zip(configs, values, bold_mask(values, configs), strict=True):
        spread = None
        if interval is not None and c in ci.index and f"{interval}_ci_low_mm" in ci.columns:
            spread = (float(ci.loc[c, f"{interval}_ci_low_mm"]), float(ci.loc[c, f"{interval}_ci_high_mm"]))
        cells.append(Cell(mean, spread, marks.get(("all", c), ""), b))
    rows.append(cells)
    return Block(rows, heading, summary_rows=1)


def _labels_note(data: TableData, configs: Sequence[str]) -> list[str]:
    """Where configurations have display labels, which name each label stands for."""
    pairs = [f"{data.labels[c]} = `{c}`" for c in configs if data.labels.get(c, c) != c]
    return [f"Columns: {'; '.join(pairs)}."] if pairs else []


def thesis_view(data: TableData, snapped: bool = False, order: Sequence[str] | None = None) -> View:
    """``tre`` / ``tre_snapped``: cases as rows plus the mean row (95 % bootstrap interval over cases for the
    continuous TRE), configurations as columns, cells mean ± std, markers of the tests on ``tre_mm`` (not on
    the snapped table), ‡ for runs that had not converged; notes: legend, conventions, labels, provenance."""
    spec = TRE_SNAPPED if snapped else TRE_THESIS
    configs = configuration_order(data.summary["configuration"].tolist(), order)
    prefix = "tre_snapped" if snapped else "tre"
    tested = not snapped and data.tests is not None
    marks = markers(data.tests, TRE) if tested else {}
    block = _case_block(
        data, configs, f"{prefix}_mean_mm", f"{prefix}_std_mm", marks, None if snapped else "tre_mean", True
    )
    notes = [FLOOR_NOTE if data.has_truth else PRIMARY_NOTE] if not snapped else []
    notes += ["Markers: " + legend_text(ALPHA, data.label(data.reference), TRE)] if tested else []
    notes += [
        conventions_text(data.summary, snapped),
        *_labels_note(data, configs),
        *provenance_lines(data.configurations, data.labels),
    ]
    title = f"{'Snapped TRE' if snapped else 'TRE'} (mm) per case, mean ± std"
    table = thesis_table(spec, configs, data, tested)
    return View(table, title, [block], notes, data.labels, latex_label(data, spec))


def exact_view(data: TableData, order: Sequence[str] | None = None) -> View:
    """``tre_exact``: the exact TRE per case (markers of the tests on ``tre_exact_mm``, bootstrap interval in
    the mean row) and, as a second block, the dense error RMS; without exact motion a view with no rows whose
    note says so."""
    configs = configuration_order(data.summary["configuration"].tolist(), order)
    title = "TRE against the exact motion (mm) per case, mean ± std"
    tested = data.tests is not None and (data.tests["value"] == TRE_EXACT_VALUE).any()
    spec = thesis_table(TRE_EXACT, configs, data, tested)
    if not data.has_truth:
        return View(spec, title, [], [], data.labels, latex_label(data, TRE_EXACT), empty_note=NO_TRUTH)
    marks = markers(data.tests, TRE_EXACT_VALUE) if tested else {}
    blocks = [
        _case_block(data, configs, "tre_exact_mean_mm", "tre_exact_std_mm", marks, "tre_exact_mean", True, "exact TRE"),
        _case_block(data, configs, "dense_error_rms_mm", None, {}, None, False, "dense error RMS"),
    ]
    # In LaTeX the dense error shows its mean row only: with every case it and its notes outgrow an A4 page.
    blocks[1].latex_heading = "dense error RMS, mean over cases (per case: tre_exact.md, tre.csv)"
    # First what the table is (the primary one), then its markers, as in tre.md.
    notes = [EXACT_NOTE]
    notes += ["Markers: " + legend_text(ALPHA, data.label(data.reference), TRE_EXACT_VALUE)] if tested else []
    notes += [
        NOT_CONVERGED_RULE,
        *_labels_note(data, configs),
        *provenance_lines(data.configurations, data.labels),
    ]
    return View(spec, title, blocks, notes, data.labels, latex_label(data, TRE_EXACT))


# -- tables with one row per case x configuration, or per test ----------------------------------------------
FOLDING_NOTE = (
    "Folding: percentage of T00-mask voxels (every voxel of the mask, none sampled) where the determinant of the "
    "Jacobian of the full map is <= 0; min and std (ddof = 1) of det J over the same voxels. SDlogJ: std (ddof = "
    "1) of log det J over the mask voxels, det J <= 0 clipped to 1e-9 before the log (so folds raise it). "
    "Converged: the loss fell by at most 1 % of its total decrease over the last 10 % of iterations, or the fall "
    "is within the batch noise (rnr/convergence.py); loss drop: that fall as a fraction of the whole. With "
    "several seeds every number is the mean over seeds, 'converged' only when every seed's run converged. "
    f"Runtime: registration wall time (0 for `{INITIAL}`, n/a without a run record); device: where it ran."
)
STATS_NOTE = (
    "Paired tests of every configuration against the reference configuration: per case a two-sided Wilcoxon "
    "signed-rank test on the paired per-landmark TREs (averaged over seeds), across cases (`all`) a Wilcoxon "
    "test on the paired case means; Holm correction over the compared configurations, per tested `value` "
    "(`tre_mm`: the file landmarks; `tre_exact_mm`: the exact positions, where the dataset carries them). "
    "Columns: see results/README.md; `stats.csv` has every number unrounded."
)
CONFIGURATIONS_NOTE = (
    "The effective settings of every configuration (empty where a method has no such setting), the seeds it "
    "was run with, the devices its runs used and the package versions they recorded (`configurations.csv`)."
)


def with_labels(frame: pd.DataFrame, data: TableData) -> pd.DataFrame:
    """``frame`` with the ``label`` column (each configuration's display label, else its name) last."""
    return frame.assign(label=frame["configuration"].map(data.label).astype(object))


def folding_frame(summary: pd.DataFrame) -> pd.DataFrame:
    """Folding, det J statistics, SDlogJ, convergence and runtime per case x configuration, display units."""
    return pd.DataFrame(
        {
            "case": summary["case"],
            "configuration": summary["configuration"],
            "folding_percent": 100.0 * summary["folding_fraction"].astype(float),
            "folding_count": summary["folding_count"],
            "n_points": summary["folding_n_points"],
            "min_det": summary["min_det"],
            "std_det": summary["std_det"],
            "sdlogj": summary["sdlogj"],
            "converged": summary["converged"],
            "loss_relative_drop": summary["loss_relative_drop"],
            "runtime_s": summary["runtime_s"],
            "device": summary["device"],
        }
    )


def frames(data: TableData) -> dict[str, pd.DataFrame]:
    """The CSV frames by table name, each with its ``label`` column."""
    tests = data.tests if data.tests is not None else pd.DataFrame(columns=[*STATS.names[:-1]])
    return {
        TRE_SUMMARY.name: with_labels(data.summary, data),
        FOLDING.name: with_labels(folding_frame(data.summary), data),
        TRE_LANDMARKS.name: with_labels(data.landmarks, data),
        TRE_EXACT_LANDMARKS.name: with_labels(data.exact_landmarks, data),
        STATS.name: with_labels(tests, data),
        CONFIGURATIONS.name: with_labels(data.configurations, data),
    }


def views(data: TableData, csv_frames: dict[str, pd.DataFrame], order: Sequence[str] | None) -> dict[str, View]:
    """The page views by table name."""
    title = "Folding, smoothness, convergence and runtime per case and configuration"
    folding = csv_frames[FOLDING.name]
    folding_rows = [[Cell(v) for v in row] for row in folding.itertuples(index=False)]
    return {
        TRE_THESIS.name: thesis_view(data, False, order),
        TRE_SNAPPED.name: thesis_view(data, True, order),
        TRE_EXACT.name: exact_view(data, order),
        FOLDING.name: View(FOLDING, title, [Block(folding_rows)], [FOLDING_NOTE], data.labels),
        # The columns that identify a row stay even where every row agrees (one compared configuration).
        STATS.name: table_render.frame_view(
            STATS, csv_frames[STATS.name], STATS.title, [STATS_NOTE], data.labels, ("configuration", "case", "label")
        ),
        CONFIGURATIONS.name: table_render.frame_view(
            CONFIGURATIONS,
            # The page puts the label next to the name (the CSV keeps it last, as in every CSV).
            csv_frames[CONFIGURATIONS.name].pipe(lambda f: f[["configuration", "label", *f.columns[1:-1]]]),
            CONFIGURATIONS.title,
            [CONFIGURATIONS_NOTE],
            data.labels,
            ("configuration", "label"),
        ),
    }


def render(table: Table, fmt: str, view: View | None) -> str:
    """One page of a table: Markdown, LaTeX or HTML."""
    if view is None:
        raise AssertionError(f"{table.name}: no view to draw as {fmt}")
    if fmt == MARKDOWN:
        return table_render.markdown(view)
    if fmt == LATEX:
        # A comment only: the file still drops into a document that inputs it.
        return f"% {view.empty_note}\n" if not any(b.rows for b in view.blocks) else table_render.latex(view)
    if fmt == HTML:
        return table_render.html(view, HTML_TABLES[table.key(HTML)])
    raise ValueError(f"{table.name}: unknown page format {fmt!r}")


def write_tables(
    runs_dir: str | Path,
    out_dir: str | Path,
    order: Sequence[str] | None = None,
    compare_to: str | None = None,
    labels: dict[str, str] | None = None,
    dataset: str = "",
) -> list[Path]:
    """Read all metrics under ``runs_dir`` and write every table of :data:`TABLES` into ``out_dir``.

    ``dataset``: the dataset's name (a key of :data:`rnr.data.DATASETS`, or ""): every page's title names it
    (by its :attr:`~rnr.data.Dataset.title`) and the LaTeX labels carry it (``tab:<dataset>-tre``).

    ``compare_to``: the reference configuration of the paired tests (default: the first registered one in
    ``order``); ``labels``: configuration -> display label, shown in every format. Returns the paths written.
    """
    data = collect(runs_dir, order, compare_to, labels, dataset)
    out = Path(out_dir)
    csv_frames = frames(data)
    pages = views(data, csv_frames, order)
    if dataset:
        title = DATASETS[dataset].title if dataset in DATASETS else dataset
        for view in pages.values():
            view.title = f"{view.title} ({title})"
    written = []
    for table in TABLE_SPECS:
        for fmt in table.formats:
            path = out / table.file(fmt)
            if fmt == CSV:
                table_render.csv(table, csv_frames[table.name], path)
            else:
                write_text(path, render(table, fmt, pages.get(table.name)))
            written.append(path)
    if sorted(p.name for p in written) != sorted(TABLES.values()):
        raise AssertionError("every table in TABLES is written exactly once")
    return written
