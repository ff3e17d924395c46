"""What every table of ``rnr tables`` is: its files, its columns, its title and its report caption.

The one registry of the tables. The renderers (rnr/reporting/table_render.py) draw any table from its columns; the
builders (rnr/reporting/tables.py) fill the rows; the workflow takes the file names and report captions from here, and
``results/README.md`` lists the columns generated from here (:func:`update_readme`, run as
``python -m rnr.reporting.table_specs results/README.md``; a test checks the README is current).

Rule files import this module when Snakemake parses them, so it imports nothing but the standard library.

A :class:`Column` is ``name`` (the CSV column), ``header`` (the short heading of Markdown, HTML and LaTeX),
``label`` (a display label that replaces the header where given: the configuration labels of the config),
``unit``, ``format`` (how a value is drawn, :data:`FORMATS`) and ``description`` (what it means). A
:class:`Table` is one table in one or more formats (``csv``, ``md``, ``tex``, ``html``): file ``<stem>.<fmt>``
and key ``<stem>_<fmt>`` in :data:`TABLES`. Thesis tables have the configurations as columns, so their
columns after ``case`` are made per run (:attr:`Table.configuration_columns`).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, replace
from pathlib import Path

#: Value formats a column may name: a ``format()`` spec for numbers (``.2f``, ``.4f``, ``d``: missing values
#: read ``n/a``), or a named kind: ``text`` (as is), ``configuration`` (the configuration's display label where
#: it has one, else its name), ``yes_no`` (``yes`` / ``no ‡``), ``mean_std`` (a cell of mean and spread: ``mean ±
#: std``, ``mean [low–high]`` or ``mean``; two decimal-aligned columns in LaTeX), ``full`` (numbers in full
#: in the CSV, whole numbers in full and others to 4 significant digits on a page).
FORMATS = ("text", "configuration", "yes_no", "mean_std", "full")
CSV, MARKDOWN, LATEX, HTML = "csv", "md", "tex", "html"


@dataclass(frozen=True)
class Column:
    """One column of a table (module docstring)."""

    name: str
    header: str = ""
    unit: str = ""
    format: str = "full"
    description: str = ""
    label: str = ""
    #: Drawn on the pages (Markdown, LaTeX, HTML); False: CSV only.
    pages: bool = True

    @property
    def heading(self) -> str:
        """The heading drawn on a page: the display label, else the header (else the name), with the unit."""
        text = self.label or self.header or self.name
        return f"{text} ({self.unit})" if self.unit else text

    @property
    def numeric(self) -> bool:
        """Right-aligned on a page (numbers), else left-aligned (text)."""
        return self.format not in ("text", "configuration", "yes_no")


@dataclass(frozen=True)
class Table:
    """One table: its file stem and formats, its columns, its page title and its report caption (reST)."""

    name: str
    stem: str
    formats: tuple[str, ...]
    title: str
    summary: str
    caption: str
    columns: tuple[Column, ...] = ()
    #: The columns after ``case`` are the configurations (header: name, label: the configuration's label).
    configuration_columns: bool = False
    #: Columns not listed may appear (configurations.csv: one column per setting of any method).
    open_columns: bool = False

    def key(self, fmt: str) -> str:
        return f"{self.stem}_{fmt}"

    def file(self, fmt: str) -> str:
        return f"{self.stem}.{fmt}"

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def page_columns(self) -> tuple[Column, ...]:
        """The columns drawn on the pages (Markdown, LaTeX, HTML)."""
        return tuple(c for c in self.columns if c.pages)


def configuration_column(name: str, label: str = "") -> Column:
    """A configuration as a column of a thesis table: cells ``mean ± std``, heading its display label."""
    return Column(name, header=name, format="mean_std", label=label if label != name else "")


def with_columns(table: Table, columns: tuple[Column, ...]) -> Table:
    """The table with the given columns (the thesis tables' configuration columns, made per run)."""
    return replace(table, columns=columns)


_CASE = Column("case", format="d", description="the case number")
_CONFIGURATION = Column(
    "configuration", format="configuration", description="the configuration name (`initial` = identity map)"
)
_LABEL = Column(
    "label",
    format="text",
    description="the configuration's display label (its `label` in the config, else its name); the pages show it",
)
_METHOD = Column(
    "method", format="text", description="the registration method (`rnr`, `idir`, `demons`, `identity`, …)"
)
_AXES = "mean per-axis TRE (absolute difference along the axis), mm"
_AXIS_STDS = "the matching stds (ddof = 1)"
_EXACT = "phantom only: TRE of φ on the exact landmark positions (no voxel rounding)"
_DENSE = "phantom only: \\|φ(x) − φ_true(x)\\| over every T00 lung-mask voxel"
_CONVERGENCE = (
    "the convergence figure: the loss fall over the last 10 % of iterations as a fraction of the run's whole "
    "fall (`rnr/convergence.py`); empty for methods without a loss log"
)
_MASK = (
    "the fraction of the T00 lung mask's voxels below −500 HU in T00, its volume (litres) and connected "
    "components (a sanity check of the mask)"
)

TRE_SUMMARY = Table(
    "tre_summary",
    "tre",
    (CSV,),
    "TRE per case and configuration",
    "one row per case × configuration (`initial` included), seeds pooled; columns below",
    "All evaluation numbers in one table, one row per (case, configuration), including ``initial`` (identity "
    "map); the contract columns first: ``tre_mean_mm`` / ``tre_std_mm``, mean and sample std (ddof = 1) of the "
    "3-D TRE over the landmarks (each averaged over seeds), mm; ``tre_x_mm``, ``tre_y_mm``, ``tre_z_mm``, mean "
    "absolute error per axis, mm; ``tre_snapped_mean_mm``, the mean TRE after rounding predicted positions to "
    "whole voxels (the reference code's and pTVreg's convention); ``folding_fraction``, the fraction of T00 "
    "lung-mask voxels where the Jacobian determinant of the map is ≤ 0; ``runtime_s``, the registration's wall "
    "time in seconds; ``device``, where it ran. Every column is described in results/README.md.",
    (
        _CASE,
        Column("configuration", format="text", description=_CONFIGURATION.description),
        Column(
            "tre_mean_mm",
            description="mean continuous TRE over the landmarks of the case (each landmark's TRE averaged over "
            "the seeds first), mm",
        ),
        Column("tre_std_mm", description="std (ddof = 1) of the same seed-averaged per-landmark TRE, mm"),
        Column("tre_x_mm", description=_AXES),
        Column("tre_y_mm", description=_AXES),
        Column("tre_z_mm", description=_AXES),
        Column(
            "tre_snapped_mean_mm", description="mean snapped TRE (prediction rounded to the nearest voxel first), mm"
        ),
        Column("folding_fraction", description="fraction of all T00-mask voxels with det J(φ) ≤ 0"),
        Column(
            "runtime_s",
            description="registration wall time from `run.json` (0 for `initial`; empty without a run record)",
        ),
        Column("device", format="text", description="where the registration ran (`none` for `initial`)"),
        _METHOD,
        Column("n_landmarks", description="landmarks scored (300 on DIR-Lab)"),
        Column("n_seeds", description="seeds pooled in the row"),
        Column("tre_seed_std_mm", description="std over seeds of the case mean TRE (empty with one seed)"),
        Column(
            "tre_median_mm", description="median, 95th percentile and maximum of the seed-averaged per-landmark TRE"
        ),
        Column("tre_p95_mm", description="median, 95th percentile and maximum of the seed-averaged per-landmark TRE"),
        Column("tre_max_mm", description="median, 95th percentile and maximum of the seed-averaged per-landmark TRE"),
        Column("tre_x_std_mm", description=_AXIS_STDS),
        Column("tre_y_std_mm", description=_AXIS_STDS),
        Column("tre_z_std_mm", description=_AXIS_STDS),
        Column("tre_snapped_std_mm", description=_AXIS_STDS),
        Column("tre_legacy_mean_mm", description="TRE under the reference code's landmark handling (below)"),
        Column("tre_legacy_std_mm", description="TRE under the reference code's landmark handling (below)"),
        Column("folding_count", description="folded voxels and mask voxels evaluated"),
        Column("folding_n_points", description="folded voxels and mask voxels evaluated"),
        Column("min_det", description="min and std (ddof = 1) of det J over the mask voxels"),
        Column("std_det", description="min and std (ddof = 1) of det J over the mask voxels"),
        Column(
            "sdlogj",
            description="SDlogJ: std (ddof = 1) of log det J over the mask voxels (smoothness; 0 for any affine map)",
        ),
        Column("iterations", description="iterations run"),
        Column("loss_relative_drop", description=_CONVERGENCE),
        Column(
            "loss_noise_z",
            description="that fall over its standard error from the mini-batch noise "
            "(`rnr/evaluation/convergence.py`); inf for a noise-free falling log, empty for methods without a loss log",
        ),
        Column("mask_air_fraction", description=_MASK),
        Column("mask_volume_l", description=_MASK),
        Column("mask_n_components", description=_MASK),
        Column("tre_exact_mean_mm", description=_EXACT),
        Column("tre_exact_std_mm", description=_EXACT),
        Column("dense_error_rms_mm", description=_DENSE),
        Column("dense_error_p95_mm", description=_DENSE),
        Column("dense_error_max_mm", description=_DENSE),
        Column(
            "converged",
            description="`False` when a seed's run has `loss_relative_drop` > 0.01 and `loss_noise_z` > 3 (marked ‡ "
            "in the tables), "
            "empty for methods without a loss log",
        ),
        Column("mask_method", format="text", description="how the T00 lung mask was made (`rnr segment`)"),
        _LABEL,
    ),
)

_THESIS_CELLS = (
    "Cells are mean ± std (ddof = 1) over the landmarks of one case in mm, each landmark's TRE averaged over the "
    "seeds first; rows are cases plus the mean over cases (with a 95 % bootstrap interval over cases), columns "
    "the configurations (headed by their display labels; ``initial`` = identity map, before registration)."
)
TRE_THESIS = Table(
    "tre_thesis",
    "tre",
    (MARKDOWN, LATEX, HTML),
    "TRE per case",
    "thesis table of continuous TRE: cases as rows plus a mean row, configurations as columns (`initial` "
    "first), cells mean ± std, markers of the paired tests; `tre.tex` needs `\\usepackage{booktabs}`",
    "Thesis-style TRE table of the 3-D target registration error, measured with continuous (not voxel-snapped) "
    f"predicted positions in 0-based voxel indices times the voxel spacing. {_THESIS_CELLS} Markers: the paired "
    "Wilcoxon tests of ``stats.csv`` on the file landmarks (``value`` = ``tre_mm``). Lower is better; a working "
    "registration lies well below ``initial``.",
    (_CASE,),
    configuration_columns=True,
)
TRE_SNAPPED = Table(
    "tre_snapped",
    "tre_snapped",
    (MARKDOWN, LATEX, HTML),
    "Snapped TRE per case",
    "the same for snapped TRE",
    "Thesis-style table of the **snapped** TRE: as the continuous TRE table, but each predicted landmark "
    f"position is first rounded to the nearest whole voxel (the reference code's and pTVreg's convention). "
    f"{_THESIS_CELLS}",
    (_CASE,),
    configuration_columns=True,
)
TRE_EXACT = Table(
    "tre_exact",
    "tre_exact",
    (MARKDOWN, LATEX, HTML),
    "TRE against the exact motion",
    "where the dataset carries its exact motion (the phantom): TRE on the exact, unrounded landmark positions, "
    "with markers of the paired tests on them, and the dense error RMS over every T00 lung-mask voxel; a "
    "one-line note otherwise",
    "TRE against the dataset's exact motion, where the dataset carries it (the built-in phantom; real DIR-Lab "
    "data has none and this table says so): the map applied to the exact, unrounded T00 landmark positions and "
    "compared with their exact T50 positions, and the dense error over every T00 lung-mask voxel (RMS of "
    "``|phi(x) - phi_true(x)|`` in mm). Unlike the landmark tables, these have no floor from rounding landmarks "
    "to whole voxels: the true motion scores 0. Markers: the paired Wilcoxon tests of ``stats.csv`` on the exact "
    "per-landmark TRE (``value`` = ``tre_exact_mm``).",
    (_CASE,),
    configuration_columns=True,
)
FOLDING = Table(
    "folding",
    "folding",
    (CSV, MARKDOWN, HTML),
    "Folding, convergence and runtime",
    "folding, det J statistics, SDlogJ, convergence, runtime and device per case × configuration",
    "Folding and runtime per case and configuration (``folding.csv`` has the same numbers unrounded). The "
    "Jacobian determinant of the map is evaluated at every voxel of the T00 lung mask: ``folding (%)`` / "
    "``folding_percent`` is the percentage of those voxels with det ≤ 0 (folded, physically impossible; 0 is "
    "ideal), ``folded`` and ``points`` the counts, ``min det J`` the smallest determinant (det = 1: no local "
    "volume change, < 1: compression as from inhale to exhale). Runtime is the registration's wall time in "
    "seconds on the listed device (0 and ``none`` for ``initial``, the identity map).",
    (
        _CASE,
        _CONFIGURATION,
        Column("folding_percent", "folding", "%", ".4f", "percentage of T00-mask voxels with det J ≤ 0"),
        Column("folding_count", "folded", "", "d", "folded mask voxels"),
        Column("n_points", "points", "", "d", "mask voxels evaluated (every voxel of the mask)"),
        Column("min_det", "min det J", "", ".3f", "smallest det J over the mask voxels"),
        Column("std_det", "std det J", "", ".3f", "std (ddof = 1) of det J over the mask voxels"),
        Column("sdlogj", "SDlogJ", "", ".3f", "std (ddof = 1) of log det J, det J ≤ 0 clipped to 1e-9"),
        Column("converged", "converged", "", "yes_no", "whether every seed's run converged (‡: not)"),
        Column(
            "loss_relative_drop", "loss drop", "", ".4f", "the loss fall over the last 10 % of iterations / whole fall"
        ),
        Column(
            "runtime_s", "runtime", "s", ".1f", "registration wall time (0 for `initial`, n/a without a run record)"
        ),
        Column("device", "device", "", "text", "where it ran"),
        # The configuration column already shows the label on the pages.
        replace(_LABEL, pages=False),
    ),
)
_LANDMARK_KEYS = (
    _CASE,
    Column("configuration", format="text", description=_CONFIGURATION.description),
    Column("seed", description="the seed of the run"),
    _METHOD,
    Column("landmark", description="0-based row of the landmark files"),
)
_SIGNED = "signed difference predicted − target along x, y, z, mm"
TRE_LANDMARKS = Table(
    "tre_landmarks",
    "tre_landmarks",
    (CSV,),
    "Per-landmark TRE",
    "tidy per-landmark TRE: one row per landmark × case × configuration × seed",
    "Per-landmark target registration error in tidy form: one row per landmark × case × configuration × seed "
    "(including ``initial``), with the 3-D error and its x, y, z components in mm. The source of the TRE "
    "distributions in the figures and of the paired tests on ``tre_mm``.",
    (
        *_LANDMARK_KEYS,
        Column("tre_mm", description="continuous TRE, mm"),
        Column("tre_snapped_mm", description="snapped TRE, mm"),
        Column("tre_legacy_mm", description="legacy TRE (the reference code's landmark handling), mm"),
        Column("dx_mm", description=_SIGNED),
        Column("dy_mm", description=_SIGNED),
        Column("dz_mm", description=_SIGNED),
        _LABEL,
    ),
)
TRE_EXACT_LANDMARKS = Table(
    "tre_exact_landmarks",
    "tre_exact_landmarks",
    (CSV,),
    "Per-landmark exact TRE",
    "where the dataset carries its exact motion (the phantom): per-landmark TRE on the exact positions, the "
    "same rows as `tre_landmarks.csv`; only the header otherwise",
    "Per-landmark TRE against the dataset's exact motion (the phantom), one row per landmark × case × "
    "configuration × seed like ``tre_landmarks.csv``: the map applied to the exact, unrounded T00 landmark "
    "position against its exact T50 position. The source of the paired tests on ``tre_exact_mm`` and the "
    "``paired_differences_exact`` figure. Empty (header only) for data without an exact motion.",
    (
        *_LANDMARK_KEYS,
        Column("tre_exact_mm", description="exact TRE, mm"),
        Column("dx_mm", description=_SIGNED + " (exact positions)"),
        Column("dy_mm", description=_SIGNED + " (exact positions)"),
        Column("dz_mm", description=_SIGNED + " (exact positions)"),
        _LABEL,
    ),
)
STATS = Table(
    "stats",
    "stats",
    (CSV, HTML),
    "Paired tests",
    "the paired tests against the reference configuration (`compare_to`), per case and across cases, on the "
    "file-landmark TRE and, where the dataset carries its exact motion, on the exact TRE; columns below",
    "Paired tests of every configuration against the reference configuration (config key ``compare_to``, by "
    "default the first configuration listed): per case a two-sided Wilcoxon signed-rank test on the paired "
    "per-landmark TREs (each averaged over the seeds of its configuration), and across cases a Wilcoxon test on "
    "the paired case means; Holm correction over the compared configurations (separately per case and across "
    "cases, and per tested value); effect size = median paired difference in mm (negative: smaller TRE than the "
    "reference). ``value`` says what is tested: ``tre_mm`` (the file landmarks) or ``tre_exact_mm`` (the exact "
    "landmark positions, phantom only). Columns are described in results/README.md.",
    (
        Column(
            "scope",
            format="text",
            description="`case`: the paired per-landmark TREs of one case, averaged over seeds; "
            "`all`: the paired case means",
        ),
        Column("case", description="the case (empty for `all`)"),
        Column("configuration", format="configuration", description="the configuration compared with the reference"),
        Column("reference", format="configuration", description="the reference configuration (`compare_to`)"),
        Column(
            "value",
            format="text",
            description="the per-landmark value tested: `tre_mm` (file landmarks) or `tre_exact_mm` (exact positions)",
        ),
        Column("n_pairs", description="paired landmarks (per case) or cases (`all`)"),
        Column("n_nonzero", description="pairs with a non-zero difference"),
        Column(
            "median_diff_mm",
            description="median and mean paired difference configuration − reference; negative = smaller TRE",
        ),
        Column(
            "mean_diff_mm",
            description="median and mean paired difference configuration − reference; negative = smaller TRE",
        ),
        Column("statistic", description="the Wilcoxon statistic (scipy's min(R+, R−))"),
        Column("p_value", description="two-sided p-value"),
        Column(
            "p_holm", description="Holm-adjusted p over the configurations compared in that case or scope, per value"
        ),
        Column("significant", format="text", description="`p_holm < alpha`"),
        Column(
            "test",
            format="text",
            description="the test, its p-value method, zero handling, alternative, correction and α",
        ),
        Column(
            "method",
            format="text",
            description="the test, its p-value method, zero handling, alternative, correction and α",
        ),
        Column(
            "zero_method",
            format="text",
            description="the test, its p-value method, zero handling, alternative, correction and α",
        ),
        Column(
            "alternative",
            format="text",
            description="the test, its p-value method, zero handling, alternative, correction and α",
        ),
        Column(
            "correction",
            format="text",
            description="the test, its p-value method, zero handling, alternative, correction and α",
        ),
        Column("alpha", description="the test, its p-value method, zero handling, alternative, correction and α"),
        Column("n_seeds", description="seeds of the configuration and of the reference in that case"),
        Column("n_seeds_reference", description="seeds of the configuration and of the reference in that case"),
        Column("note", format="text", description="why a test could not be run, or what was left out"),
        replace(_LABEL, pages=False),  # the configuration column shows the label
    ),
)
CONFIGURATIONS = Table(
    "configurations",
    "configurations",
    (CSV, HTML),
    "Configurations",
    "every configuration's effective settings (empty where its method has no such key), seeds, run count, "
    "devices and package versions",
    "The effective settings of every configuration (one column per setting; empty where a method has no such "
    "key), the seeds it was run with, the devices its runs used and the package versions they recorded. A "
    "configuration whose runs were made with different settings stops ``rnr tables`` with an error naming the "
    "runs.",
    (
        Column("configuration", format="text", description="the configuration name"),
        Column("method", format="text", description="its registration method"),
        Column("seeds", format="text", description="the seeds it was run with, space-separated"),
        Column("n_runs", description="runs pooled (cases × seeds)"),
        Column("devices", format="text", description="the devices its runs used"),
        Column("versions", format="text", description="the package versions its runs recorded"),
        _LABEL,
    ),
    open_columns=True,
)

_P_VALUE = (
    "the paired test against the base across cases (Wilcoxon on the paired case means, Holm over the sweep's "
    "rows; `tested` says on which TRE): median difference row − base (negative: smaller TRE) and Holm p"
)
ABLATION = Table(
    "ablation",
    "ablation",
    (CSV, MARKDOWN, LATEX, HTML),
    "Ablation",
    "per sweep (`ablation/<sweep>/`, `rnr ablation`): one row per value of the swept settings, the base first",
    "One sweep of the config's ``sweeps``: one row per value (the base configuration first), means over cases "
    "of each case's seed-averaged TRE with a 95 % bootstrap interval over cases, folding, SDlogJ and runtime, "
    "and the paired test of each row against the base.",
    (
        Column("configuration", format="configuration", description="the configuration that ran the row"),
        Column("value", header="value", format="text", description="the swept settings of the row (`key=value`)"),
        Column("n_cases", format="d", pages=False, description="cases averaged"),
        Column("n_seeds", format="d", pages=False, description="seeds per case"),
        Column(
            "tre_mean_mm",
            header="TRE",
            unit="mm",
            format="mean_std",
            description="mean over cases of the mean TRE (file landmarks), mm",
        ),
        Column("tre_ci_low_mm", pages=False, description="its 95 % bootstrap interval over cases, mm"),
        Column("tre_ci_high_mm", pages=False, description="its 95 % bootstrap interval over cases, mm"),
        Column(
            "tre_exact_mean_mm",
            header="exact TRE",
            unit="mm",
            format="mean_std",
            description="the same on the exact landmark positions (datasets with their motion; else empty)",
        ),
        Column("tre_exact_ci_low_mm", pages=False, description="its interval, mm"),
        Column("tre_exact_ci_high_mm", pages=False, description="its interval, mm"),
        Column(
            "folding_percent",
            header="folding",
            unit="%",
            format=".3f",
            description="mean over cases of the percentage of T00-mask voxels with det J <= 0",
        ),
        Column("sdlogj", header="SDlogJ", format=".3f", description="mean over cases of SDlogJ"),
        Column(
            "runtime_s",
            header="time/case",
            unit="s",
            format=".1f",
            description="mean registration wall time per case, s (recording a curve excluded)",
        ),
        Column("tested", format="text", pages=False, description=_P_VALUE),
        Column("median_diff_mm", header="Δ vs base", unit="mm", format="+.2f", description=_P_VALUE),
        Column("p_holm", header="p (Holm)", format=".3g", description=_P_VALUE),
        _LABEL,
    ),
)
_FRACTION = "mean over cases of the TRE at the first point recorded at or after this fraction of the iterations, mm"
BUDGET = Table(
    "budget",
    "budget",
    (CSV, MARKDOWN, LATEX, HTML),
    "Accuracy against budget",
    "`curves/` (`rnr curves`): per configuration the TRE at fixed fractions of its iteration budget and the time "
    "to come within 5 % of its final TRE",
    "Accuracy against budget: per configuration, from the curves recorded during the fits (``curve_every``), the "
    "TRE after 10 %, 25 % and 50 % of the iterations and at the end, and the fitting time until the TRE first "
    "came within 5 % of its final value; methods without a loop have one point (their final TRE and runtime).",
    (
        Column("configuration", format="configuration", description="the configuration"),
        Column("method", format="text", pages=False, description="its method"),
        Column(
            "value",
            format="text",
            pages=False,
            description="the TRE used: `tre_exact_mm` where the dataset carries its motion, else `tre_mm`",
        ),
        Column("n_cases", format="d", pages=False, description="cases averaged (seeds averaged first)"),
        Column("iterations", header="iterations", format="d", description="the iteration budget"),
        Column("points", header="points", format=".0f", description="recorded points per run (1: no curve)"),
        Column("tre_at_10pct_mm", header="TRE @10 %", unit="mm", format=".2f", description=_FRACTION),
        Column("tre_at_25pct_mm", header="TRE @25 %", unit="mm", format=".2f", description=_FRACTION),
        Column("tre_at_50pct_mm", header="TRE @50 %", unit="mm", format=".2f", description=_FRACTION),
        Column("tre_final_mm", header="final TRE", unit="mm", format=".2f", description="mean final TRE, mm"),
        Column(
            "time_final_s", header="time", unit="s", format=".1f", description="mean fitting time at the last point, s"
        ),
        Column(
            "time_within_5pct_s",
            header="time to 5 %",
            unit="s",
            format=".1f",
            description="mean fitting time until the TRE first came within 5 % of the run's final TRE, s",
        ),
        Column(
            "iteration_within_5pct",
            header="iterations to 5 %",
            format=".0f",
            description="the same in iterations (mean)",
        ),
        _LABEL,
    ),
)
#: Tables of the studies (one per sweep, and the budget table), written by their own commands.
STUDY_TABLE_SPECS = (ABLATION, BUDGET)

#: Every table, in the order of results/README.md.
TABLE_SPECS = (
    TRE_SUMMARY,
    TRE_THESIS,
    TRE_SNAPPED,
    TRE_EXACT,
    FOLDING,
    TRE_LANDMARKS,
    TRE_EXACT_LANDMARKS,
    STATS,
    CONFIGURATIONS,
)
#: Key -> file name of every file ``rnr tables`` writes (the workflow builds its outputs from this).
TABLES = {t.key(fmt): t.file(fmt) for t in TABLE_SPECS for fmt in t.formats}
#: The table of each key of :data:`TABLES`.
TABLE_OF = {t.key(fmt): t for t in TABLE_SPECS for fmt in t.formats}
#: The tables shown inline in the HTML report, in reading order: key of :data:`TABLES` -> short title.
HTML_TABLES = {t.key(HTML): t.title for t in (TRE_THESIS, TRE_EXACT, TRE_SNAPPED, FOLDING, STATS, CONFIGURATIONS)}
#: Report captions (reST) by table name; the workflow hands them to ``workflow/report/tables/<name>.rst``.
CAPTIONS = {t.name: t.caption for t in TABLE_SPECS}


def caption_file(key: str) -> str:
    """The report caption file of a key of :data:`TABLES`, relative to workflow/report/."""
    return f"tables/{TABLE_OF[key].name}.rst"


# -- results/README.md ------------------------------------------------------------------------------------
def files_markdown() -> str:
    """The README's list of the tables: one row per table, its files and what it holds."""
    rows = ["| file | content |", "|---|---|"]
    for table in TABLE_SPECS:
        files = ", ".join(f"`{table.file(fmt)}`" for fmt in table.formats)
        rows.append(f"| {files} | {table.summary} |")
    return "\n".join(rows)


def columns_markdown(table: Table) -> str:
    """The README's column list of a CSV table: consecutive columns with the same description share a row."""
    groups: list[tuple[list[str], str]] = []
    for column in table.columns:
        if groups and groups[-1][1] == column.description:
            groups[-1][0].append(column.name)
        else:
            groups.append(([column.name], column.description))
    rows = ["| column | meaning |", "|---|---|"]
    rows += [f"| {', '.join(f'`{n}`' for n in names)} | {text} |" for names, text in groups]
    return "\n".join(rows)


def readme_sections() -> dict[str, str]:
    """Generated sections of results/README.md, by marker name."""
    sections = {"tables": files_markdown()}
    sections |= {f"columns {t.file(CSV)}": columns_markdown(t) for t in TABLE_SPECS if CSV in t.formats}
    sections |= {f"columns {t.file(CSV)}": columns_markdown(t) for t in STUDY_TABLE_SPECS}
    return sections


_SECTION = re.compile(r"(<!-- generated: (?P<name>[^>]+?) -->\n)(.*?)(<!-- end generated -->)", re.S)


def render_readme(text: str) -> str:
    """``text`` with every generated section (between ``<!-- generated: NAME -->`` and ``<!-- end generated
    -->``) replaced by its current content; unknown section names raise ValueError."""
    sections = readme_sections()

    def fill(match: re.Match) -> str:
        name = match.group("name")
        if name not in sections:
            raise ValueError(
                f"results/README.md: unknown generated section {name!r}; expected one of {sorted(sections)}"
            )
        return f"{match.group(1)}{sections[name]}\n{match.group(4)}"

    return _SECTION.sub(fill, text)


def update_readme(path: str | Path) -> bool:
    """Rewrite the generated sections of the README at ``path``; True when it changed."""
    path = Path(path)
    old = path.read_text()
    new = render_readme(old)
    if new != old:
        from ..io import write_text  # at call time: rule files import this module, rnr.io imports SimpleITK

        write_text(path, new)
    return new != old


if __name__ == "__main__":
    for arg in sys.argv[1:] or ["results/README.md"]:
        print(f"{arg}: {'updated' if update_readme(arg) else 'up to date'}")
