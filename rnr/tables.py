"""Render the collected results (rnr/results.py) as the thesis-style tables: Markdown, LaTeX and CSV.

Outputs in ``<out_dir>`` (:data:`TABLES`, the one list of their names; results/README.md explains every
column):

* ``tre.csv`` - one row per (case, configuration), seeds pooled, ``initial`` included, the contract columns
  (rnr.results.CONTRACT_COLUMNS) first;
* ``tre.md`` / ``tre.tex`` - the thesis table of continuous TRE: cases as rows plus a mean row (with a 95 %
  bootstrap interval over cases), configurations as columns, cells ``mean ± std``, markers of the paired
  tests against the reference configuration, and a footer with the conventions and the provenance;
* ``tre_snapped.md`` / ``tre_snapped.tex`` - the same for snapped TRE (without the tests);
* ``folding.csv`` / ``folding.md`` - folding, det J statistics, SDlogJ, convergence, runtime, device;
* ``tre_landmarks.csv`` - one row per landmark x case x configuration x seed;
* ``stats.csv`` - the paired Wilcoxon tests (rnr.stats.paired_tests);
* ``configurations.csv`` - every configuration's effective settings, seeds, devices and package versions;
* ``tre_exact.md`` / ``tre_exact.tex`` - where the dataset carries its exact motion (the phantom): TRE on the
  exact landmark positions and the dense error over the lung mask (rnr/truth.py); a one-line note otherwise;
* ``tre.html``, ``tre_snapped.html``, ``tre_exact.html``, ``folding.html``, ``stats.html``,
  ``configurations.html`` - the same tables as self-contained HTML pages (:data:`HTML_TABLES`), which the
  Snakemake report shows inline (it offers Markdown, LaTeX and CSV files for download only).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import stats
from .io import write_csv, write_text
from .layout import INITIAL
from .results import (
    configuration_order,
    configurations_frame,
    load_metrics,
    per_landmark_frame,
    summary_frame,
)

#: Key -> file name of every table ``rnr tables`` writes (the workflow builds its outputs from this).
TABLES = {
    "tre_csv": "tre.csv",
    "tre_md": "tre.md",
    "tre_tex": "tre.tex",
    "tre_snapped_md": "tre_snapped.md",
    "tre_snapped_tex": "tre_snapped.tex",
    "folding_csv": "folding.csv",
    "folding_md": "folding.md",
    "tre_landmarks_csv": "tre_landmarks.csv",
    "stats_csv": "stats.csv",
    "configurations_csv": "configurations.csv",
    "tre_exact_md": "tre_exact.md",
    "tre_exact_tex": "tre_exact.tex",
    "tre_html": "tre.html",
    "tre_snapped_html": "tre_snapped.html",
    "tre_exact_html": "tre_exact.html",
    "folding_html": "folding.html",
    "stats_html": "stats.html",
    "configurations_html": "configurations.html",
}
#: The tables shown inline in the HTML report, in reading order: key of :data:`TABLES` -> short title. Each is
#: a self-contained HTML page of the table of the same stem (Markdown rendered, or the CSV as a table).
HTML_TABLES = {
    "tre_html": "TRE per case",
    "tre_exact_html": "TRE against the exact motion",
    "tre_snapped_html": "Snapped TRE per case",
    "folding_html": "Folding, convergence and runtime",
    "stats_html": "Paired tests",
    "configurations_html": "Configurations",
}
ALPHA = 0.05
BOOTSTRAP_SEED = 0
N_BOOT = 10000
#: Marker of a case x configuration whose run(s) had not converged (rnr/convergence.py).
MARK_NOT_CONVERGED = "‡"
#: Settings shown in the provenance footer, in this order (others follow alphabetically).
PROVENANCE_KEYS = (
    "method",
    "iterations",
    "batch_size",
    "sampling",
    "lr",
    "intermediate",
    "pairing",
    "n_blocks",
    "width",
    "shared_weights",
    "alpha_grad",
    "alpha_weight",
    "seeds",
)


@dataclass
class TableData:
    """Everything the thesis tables show: the pooled summary, the test markers, the mean row's intervals
    and the provenance of the configurations."""

    summary: pd.DataFrame
    configurations: pd.DataFrame
    tests: pd.DataFrame | None
    reference: str | None
    intervals: pd.DataFrame

    def marker(self, case: int | str, config: str) -> str:
        if self.tests is None or self.tests.empty:
            return ""
        return stats.markers(self.tests).get((case, config), "")


def collect(runs_dir: str | Path, order: Sequence[str] | None = None, compare_to: str | None = None) -> tuple:
    """Read the runs and compute every table's data: (TableData, per-landmark frame)."""
    records = load_metrics(runs_dir, order)
    summary = summary_frame(records, order)
    landmarks = per_landmark_frame(records, order)
    configurations = configurations_frame(records, order)
    registered = [c for c in configuration_order(summary["configuration"].tolist(), order) if c != INITIAL]
    reference = compare_to if compare_to in registered else (registered[0] if registered else None)
    tests = None
    if reference is not None and len(registered) > 1:
        tests = stats.paired_tests(landmarks, reference, [c for c in registered if c != reference], alpha=ALPHA)
    intervals = stats.mean_over_cases(summary, n_boot=N_BOOT, seed=BOOTSTRAP_SEED)
    return TableData(summary, configurations, tests, reference, intervals), landmarks


# -- thesis-style tables ---------------------------------------------------------------------------------
def conventions_text(summary: pd.DataFrame, snapped: bool) -> str:
    """The footer stating what every number in a TRE table means."""
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
    return (
        f"TRE in mm, {kind}. Landmarks in 0-based voxel indices, mm = index x spacing per axis (x, y, z). "
        f"Cells: mean ± std over {n_text} of one case{seed_text}, std with ddof = 1. Mean row: mean over cases "
        f"of the per-case means, with a 95 % bootstrap interval over cases (seed {BOOTSTRAP_SEED}, {N_BOOT} "
        f"resamples). `{INITIAL}`: identity map (no registration). Bold: lowest mean among the registered "
        f"configurations in that row (not `{INITIAL}`; only when at least two are compared). "
        f"{MARK_NOT_CONVERGED}: a run of that cell had not converged (its loss still fell by more than 1 % of its "
        "total decrease over the last 10 % of iterations)."
    )


def _setting_text(value: Any) -> str:
    """A setting as the footer shows it: '-' when the configuration has no such key, integral floats as ints
    (a column mixing methods turns 2500 into 2500.0)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    if isinstance(value, float) and value.is_integer() and abs(value) >= 1:
        return str(int(value))
    return str(value)


def provenance_lines(data: TableData) -> list[str]:
    """The settings of the compared configurations: those that differ between them (listed for the
    configurations that have the key), those every configuration shares, those only some configurations have
    (their method's keys, grouped by who has them), then devices and versions."""
    frame = data.configurations.set_index("configuration")
    frame = frame.drop(index=[c for c in frame.index if c == INITIAL])
    if frame.empty:
        return []
    keys = [k for k in PROVENANCE_KEYS if k in frame.columns]
    keys += sorted(k for k in frame.columns if k not in keys and k not in ("n_runs", "devices", "versions"))
    differ, same, partial = [], [], {}
    for key in keys:
        # '-': the configuration's method has no such key; it neither differs nor shares.
        shown = {c: t for c, t in ((c, _setting_text(v)) for c, v in frame[key].items()) if t != "-"}
        if len(set(shown.values())) > 1:
            differ.append(f"{key}: " + ", ".join(f"{c} {v}" for c, v in shown.items()))
        elif len(shown) == len(frame):
            same.append(f"{key} {next(iter(shown.values()))}")
        elif shown:
            partial.setdefault(", ".join(shown), []).append(f"{key} {next(iter(shown.values()))}")
    lines = []
    if differ:
        lines.append("Settings that differ: " + "; ".join(differ) + ".")
    if same:
        lines.append("Settings shared by every configuration: " + ", ".join(same) + ".")
    if partial:
        groups = "; ".join(f"{who}: {', '.join(items)}" for who, items in partial.items())
        lines.append(f"Settings of some configurations only (their method's): {groups}.")
    devices = sorted({d for text in frame["devices"] for d in str(text).split(", ")})
    versions = sorted(set(frame["versions"]))
    lines.append(f"Devices: {', '.join(devices)}. Versions: {' | '.join(versions)}.")
    return lines


def _cells(data: TableData, mean_col: str, std_col: str, configs: list[str], marks: bool) -> list:
    """Rows (label, [(mean, std or interval, marker)]) of the thesis table, mean row last."""
    summary = data.summary
    table = summary.set_index(["case", "configuration"])
    rows = []
    for case in sorted(summary["case"].unique()):
        cells = []
        for c in configs:
            row = table.loc[(case, c)]
            mark = data.marker(int(case), c) if marks else ""
            if row.get("converged") is False:
                mark += MARK_NOT_CONVERGED
            cells.append((float(row[mean_col]), float(row[std_col]), mark))
        rows.append((str(case), cells))
    means = summary.groupby("configuration")[mean_col].mean()
    ci = data.intervals.set_index("configuration")
    mean_cells = []
    for c in configs:
        interval = None
        if mean_col == "tre_mean_mm" and c in ci.index:
            interval = (float(ci.loc[c, "tre_mean_ci_low_mm"]), float(ci.loc[c, "tre_mean_ci_high_mm"]))
        mean_cells.append((float(means[c]), interval, data.marker("all", c) if marks else ""))
    rows.append(("mean", mean_cells))
    return rows


def _bold_mask(values: list[tuple], configs: list[str]) -> list[bool]:
    """Lowest mean (at the shown 2 decimals; ties all bold) among non-initial configurations, if >= 2."""
    candidates = [i for i, c in enumerate(configs) if c != INITIAL]
    if len(candidates) < 2:
        return [False] * len(configs)
    best = min(round(values[i][0], 2) for i in candidates)
    return [i in candidates and round(values[i][0], 2) == best for i in range(len(configs))]


def _fmt(mean: float, spread: Any, pm: str, dash: str = "–") -> str:
    if not np.isfinite(mean):
        return "n/a"
    if isinstance(spread, tuple):
        low, high = spread
        return f"{mean:.2f}" if not np.isfinite(low) else f"{mean:.2f} [{low:.2f}{dash}{high:.2f}]"
    return f"{mean:.2f}" if spread is None or not np.isfinite(spread) else f"{mean:.2f}{pm}{spread:.2f}"


def thesis_markdown(data: TableData, snapped: bool = False, order: Sequence[str] | None = None) -> str:
    """Markdown thesis table: caption line, table (rows: cases, mean; columns: configurations), legend,
    conventions and provenance."""
    mean_col, std_col = ("tre_snapped_mean_mm", "tre_snapped_std_mm") if snapped else ("tre_mean_mm", "tre_std_mm")
    configs = configuration_order(data.summary["configuration"].tolist(), order)
    marks = not snapped and data.tests is not None
    title = "Snapped TRE" if snapped else "TRE"
    lines = [
        f"**{title} (mm) per case, mean ± std.**",
        "",
        "| case | " + " | ".join(configs) + " |",
        "|---:|" + "---:|" * len(configs),
    ]
    for label, values in _cells(data, mean_col, std_col, configs, marks):
        bold = _bold_mask(values, configs)
        cells = []
        for (m, s, mark), b in zip(values, bold, strict=True):
            text = _fmt(m, s, " ± ")
            cells.append((f"**{text}**" if b else text) + mark)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("")
    if marks:
        lines += ["Markers: " + stats.legend_text(ALPHA, data.reference), ""]
    lines += [conventions_text(data.summary, snapped), ""]
    lines += [*provenance_lines(data), ""]
    return "\n".join(lines)


_TEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "_": r"\_",
    "%": r"\%",
    "&": r"\&",
    "#": r"\#",
    "$": r"\$",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}
_TEX_MARKS = {**stats.LATEX_MARKS, MARK_NOT_CONVERGED: r"$^{\ddagger}$"}


def _tex_escape(text: str) -> str:
    """Escape LaTeX special characters of plain text (configuration names such as ``rnr_mask30``)."""
    return "".join(_TEX_SPECIAL.get(ch, ch) for ch in text)


def _tex_text(text: str) -> str:
    text = _tex_escape(text.replace("`", ""))
    for symbol, tex in (("±", r"$\pm$"), ("α", r"$\alpha$"), ("≤", r"$\le$"), ("–", "--")):
        text = text.replace(symbol, tex)
    for mark, tex in _TEX_MARKS.items():
        text = text.replace(mark, tex)
    return text.replace("index x spacing", r"index $\times$ spacing")


def _latex_cell(mean: float, spread: Any, mark: str, bold: bool) -> str:
    """Two aligned columns ``mean & spread``: the mean right-aligned, '± std' or '[low--high]' left-aligned, so
    the decimal points line up down each configuration (all values carry two decimals)."""
    if not np.isfinite(mean):
        return r"\multicolumn{2}{c}{n/a}"
    if isinstance(spread, tuple):
        rest = "" if not np.isfinite(spread[0]) else f"[{spread[0]:.2f}--{spread[1]:.2f}]"
    else:
        rest = "" if spread is None or not np.isfinite(spread) else rf"$\pm$ {spread:.2f}"
    marks = "".join(_TEX_MARKS.get(ch, ch) for ch in mark)
    left, right = f"{mean:.2f}", rest
    if bold:
        left, right = rf"\textbf{{{left}}}", (rf"\textbf{{{right}}}" if right else right)
    return f"{left} & {right}{marks}"


def _interval_cell(interval: tuple[float, float] | None) -> str:
    """``[low--high]`` in small type across a configuration's two columns (empty without an interval)."""
    if interval is None or not np.isfinite(interval[0]):
        return r"\multicolumn{2}{c}{}"
    return rf"\multicolumn{{2}}{{c}}{{\footnotesize [{interval[0]:.2f}--{interval[1]:.2f}]}}"


def latex_table(
    title: str, label: str, configs: list[str], blocks: list[tuple[str | None, list]], notes: list[str], labels=None
) -> str:
    """A booktabs table for a thesis: ``\\caption[title]{title}`` (the short form for the List of Tables),
    cases as rows, two decimal-aligned columns per configuration (display names from ``labels``), and the
    notes as a footnote-size paragraph under the table instead of in the caption.

    Args:
        blocks: (heading or None, rows) with rows = [(row label, [(mean, std | (low, high) | None, marker)])].
    """
    labels = labels or {}
    names = [_tex_escape(labels.get(c, c)) for c in configs]
    lines = [
        r"\begin{table}[ht]",
        r"\centering",
        rf"\caption[{title}]{{{title}.}}",
        rf"\label{{{label}}}",
        # Small type and narrower column gaps (both local to the table): five configurations of 'mean ± std'
        # then fit a 16 cm text width at an 11-pt body size.
        r"\small",
        r"\setlength{\tabcolsep}{4pt}",
        r"\begin{tabular}{l" + r"r@{\,}l" * len(configs) + "}",
        r"\toprule",
        "Case & " + " & ".join(rf"\multicolumn{{2}}{{c}}{{{n}}}" for n in names) + r" \\",
    ]
    for heading, rows in blocks:
        lines.append(r"\midrule")
        if heading:
            lines.append(rf"\multicolumn{{{2 * len(configs) + 1}}}{{l}}{{\emph{{{heading}}}}} \\")
        for row_label, values in rows:
            if row_label == "mean":
                lines.append(r"\midrule")
            # Intervals of the mean row go on a line of their own: in the cell they would widen every column.
            intervals = [s if isinstance(s, tuple) else None for _, s, _ in values]
            if any(intervals):
                values = [(m, None, mark) for m, _, mark in values]
            bold = _bold_mask([(v[0], None) for v in values], configs)
            cells = [_latex_cell(m, s, mark, b) for (m, s, mark), b in zip(values, bold, strict=True)]
            lines.append(f"{row_label.capitalize()} & " + " & ".join(cells) + r" \\")
            if any(intervals):
                lines.append(r"\quad 95\,\% interval & " + " & ".join(_interval_cell(i) for i in intervals) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    lines += [r"\par\smallskip", r"\begin{minipage}{\linewidth}\footnotesize"]
    lines += [_tex_text(n) for n in notes]
    lines += [r"\end{minipage}", r"\end{table}", ""]
    return "\n".join(lines)


def thesis_latex(
    data: TableData, snapped: bool = False, order: Sequence[str] | None = None, labels: dict[str, str] | None = None
) -> str:
    """LaTeX (booktabs) version of :func:`thesis_markdown`: short caption, notes under the table."""
    mean_col, std_col = ("tre_snapped_mean_mm", "tre_snapped_std_mm") if snapped else ("tre_mean_mm", "tre_std_mm")
    configs = configuration_order(data.summary["configuration"].tolist(), order)
    marks = not snapped and data.tests is not None
    title = f"{'Snapped TRE' if snapped else 'TRE'} (mm) per case, mean ± std".replace("±", r"$\pm$")
    notes = ([stats.legend_text(ALPHA, data.reference)] if marks else []) + [conventions_text(data.summary, snapped)]
    rows = _cells(data, mean_col, std_col, configs, marks)
    label = f"tab:{'tre-snapped' if snapped else 'tre'}"
    return latex_table(title, label, configs, [(None, rows)], notes + provenance_lines(data), labels)


# -- against the exact truth ------------------------------------------------------------------------------
EXACT_NOTE = (
    "Exact TRE: the map applied to the exact (unrounded) T00 landmark positions of the dataset's known motion, "
    "compared with their exact T50 positions (continuous, mean ± std over the landmarks, ddof = 1). Dense error: "
    "RMS over every T00 lung-mask voxel of |phi(x) - phi_true(x)| in mm. The landmark files hold whole voxels, "
    "so file-landmark TRE has a floor even for a perfect map; these numbers have none: the true motion scores 0. "
    "With several seeds every number is the mean over seeds."
)
NO_TRUTH = "This dataset carries no exact motion (real data): the landmark tables (tre.md) are the reference.\n"


def _has_truth(summary: pd.DataFrame) -> bool:
    return bool(summary["tre_exact_mean_mm"].notna().all())


def exact_markdown(data: TableData, order: Sequence[str] | None = None) -> str:
    """Markdown tables of the exact-truth scores (rnr/truth.py): exact landmark TRE and dense error RMS."""
    if not _has_truth(data.summary):
        return NO_TRUTH
    configs = configuration_order(data.summary["configuration"].tolist(), order)
    table = data.summary.set_index(["case", "configuration"])
    lines = ["**TRE against the exact motion (mm) per case, mean ± std.**", ""]
    for title, mean_col, std_col in (
        ("exact TRE", "tre_exact_mean_mm", "tre_exact_std_mm"),
        ("dense error RMS", "dense_error_rms_mm", None),
    ):
        lines += [f"| case ({title}) | " + " | ".join(configs) + " |", "|---:|" + "---:|" * len(configs)]
        rows = [
            (
                str(case),
                [
                    (
                        float(table.loc[(case, c), mean_col]),
                        None if std_col is None else float(table.loc[(case, c), std_col]),
                    )
                    for c in configs
                ],
            )
            for case in sorted(data.summary["case"].unique())
        ]
        means = data.summary.groupby("configuration")[mean_col].mean()
        rows.append(("mean", [(float(means[c]), None) for c in configs]))
        for label, values in rows:
            bold = _bold_mask(values, configs)
            cells = [
                f"**{_fmt(m, s, ' ± ')}**" if b else _fmt(m, s, " ± ") for (m, s), b in zip(values, bold, strict=True)
            ]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += [EXACT_NOTE, "", *provenance_lines(data), ""]
    return "\n".join(lines)


def exact_latex(data: TableData, order: Sequence[str] | None = None, labels: dict[str, str] | None = None) -> str:
    """LaTeX exact-truth table: exact TRE (mean ± std) and, as a second block, the dense error RMS."""
    if not _has_truth(data.summary):
        return "% " + NO_TRUTH
    configs = configuration_order(data.summary["configuration"].tolist(), order)
    table = data.summary.set_index(["case", "configuration"])
    blocks = []
    for heading, mean_col, std_col in (
        ("Exact TRE, mean $\\pm$ std", "tre_exact_mean_mm", "tre_exact_std_mm"),
        ("Dense error RMS", "dense_error_rms_mm", None),
    ):
        rows = [
            (
                str(case),
                [
                    (
                        float(table.loc[(case, c), mean_col]),
                        None if std_col is None else float(table.loc[(case, c), std_col]),
                        "",
                    )
                    for c in configs
                ],
            )
            for case in sorted(data.summary["case"].unique())
        ]
        means = data.summary.groupby("configuration")[mean_col].mean()
        rows.append(("mean", [(float(means[c]), None, "") for c in configs]))
        blocks.append((heading, rows))
    title = "TRE against the exact motion (mm) per case"
    return latex_table(title, "tab:tre-exact", configs, blocks, [EXACT_NOTE, *provenance_lines(data)], labels)


# -- folding and runtime ----------------------------------------------------------------------------------
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


def _num(value: Any, fmt: str) -> str:
    """Format a number; missing values (e.g. no run record, so no runtime) read 'n/a'."""
    if value is None or pd.isna(value):
        return "n/a"
    return format(int(round(float(value))) if fmt == "d" else float(value), fmt)


def _yes_no(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n/a"
    return "yes" if bool(value) else f"no {MARK_NOT_CONVERGED}"


def folding_markdown(folding: pd.DataFrame) -> str:
    """Markdown table of :func:`folding_frame` with a footer stating what the numbers are."""
    lines = [
        "**Folding, smoothness, convergence and runtime per case and configuration.**",
        "",
        "| case | configuration | folding (%) | folded / points | min det J | std det J | SDlogJ | converged "
        "| runtime (s) | device |",
        "|---:|---|---:|---:|---:|---:|---:|---|---:|---|",
    ]
    for r in folding.itertuples(index=False):
        lines.append(
            f"| {r.case} | {r.configuration} | {_num(r.folding_percent, '.4f')} | "
            f"{_num(r.folding_count, 'd')} / {_num(r.n_points, 'd')} | {_num(r.min_det, '.3f')} | "
            f"{_num(r.std_det, '.3f')} | {_num(r.sdlogj, '.3f')} | {_yes_no(r.converged)} | "
            f"{_num(r.runtime_s, '.1f')} | {r.device} |"
        )
    lines += [
        "",
        "Folding: percentage of T00-mask voxels (every voxel of the mask, none sampled) where the determinant of "
        "the Jacobian of the full map is <= 0; min and std (ddof = 1) of det J over the same voxels. SDlogJ: std "
        "(ddof = 1) of log det J over the mask voxels, det J <= 0 clipped to 1e-9 before the log (so folds raise "
        "it). Converged: the loss fell by at most 1 % of its total decrease over the last 10 % of iterations, or "
        "the fall is within the batch noise (rnr/convergence.py). With several seeds every number is the mean "
        f"over seeds, 'converged' only when every seed's run converged. Runtime: registration wall time (0 for "
        f"`{INITIAL}`, n/a without a run record); device: where it ran.",
        "",
    ]
    return "\n".join(lines)


# -- HTML pages of the tables (the report shows HTML inline) ----------------------------------------------
_HTML_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; font-size: 14px; color: #1f2933;
       background: #fff; margin: 1.5em; max-width: 80em; line-height: 1.45; }
h1 { font-size: 1.3em; margin: 0 0 0.6em 0; }
table { border-collapse: collapse; margin: 0.8em 0 1.2em 0; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid #d5dbe1; padding: 0.3em 0.8em; white-space: nowrap; }
th { background: #eef2f6; border-bottom: 2px solid #9aa5b1; }
tbody tr:nth-child(even) { background: #f8fafc; }
td.num, th.num { text-align: right; }
td.text, th.text { text-align: left; }
p { margin: 0.5em 0; }
p.note { font-size: 0.92em; color: #3e4c59; }
code { font-size: 0.95em; background: #eef2f6; padding: 0 0.2em; border-radius: 3px; }
"""


_INLINE_MD = re.compile(r"`([^`]+)`|\*\*(.+?)\*\*")


def _inline_html(text: str) -> str:
    """Escape ``text`` and render the Markdown the tables use inline: ``**bold**`` and ```code```."""
    out, pos = [], 0
    for match in _INLINE_MD.finditer(text):
        out.append(escape(text[pos : match.start()]))
        code, bold = match.groups()
        out.append(f"<code>{escape(code)}</code>" if code is not None else f"<strong>{_inline_html(bold)}</strong>")
        pos = match.end()
    out.append(escape(text[pos:]))
    return "".join(out)


def _md_table_html(lines: list[str]) -> str:
    """A Markdown pipe table (header, alignment row, body) as an HTML table; ``---:`` columns right-aligned."""

    def cells(line: str) -> list[str]:
        return [c.strip() for c in line.strip().strip("|").split("|")]

    header, align, *body = lines
    kinds = ["num" if a.endswith(":") else "text" for a in cells(align)]
    head = "".join(f'<th class="{k}">{_inline_html(c)}</th>' for c, k in zip(cells(header), kinds, strict=True))
    rows = [
        "<tr>"
        + "".join(f'<td class="{k}">{_inline_html(c)}</td>' for c, k in zip(cells(r), kinds, strict=True))
        + "</tr>"
        for r in body
    ]
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(rows) + "\n</tbody>\n</table>"


def _html_page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(title)}</title>\n<style>{_HTML_STYLE}</style>\n</head>\n<body>\n"
        f"<h1>{escape(title)}</h1>\n{body}\n</body>\n</html>\n"
    )


def markdown_html(markdown: str, title: str) -> str:
    """One of the Markdown tables of this module as a self-contained HTML page: blocks separated by blank
    lines, a block of ``|`` lines is a table, any other block a paragraph (the first, the bold caption line,
    as is; the later ones, legends and notes, smaller)."""
    blocks, block = [], []
    for line in [*markdown.splitlines(), ""]:
        if line.strip():
            block.append(line)
        elif block:
            blocks.append(block)
            block = []
    html = []
    for i, lines in enumerate(blocks):
        if all(line.lstrip().startswith("|") for line in lines) and len(lines) >= 2:
            html.append(_md_table_html(lines))
        else:
            kind = "" if i == 0 else ' class="note"'
            html.append(f"<p{kind}>" + _inline_html(" ".join(line.strip() for line in lines)) + "</p>")
    return _html_page(title, "\n".join(html))


def _html_value(value: Any) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "–"
    if isinstance(value, float | np.floating):
        value = float(value)
        # Whole numbers (counts, rank statistics) in full, others to 4 significant digits.
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else format(value, ".4g")
    return str(value)


def frame_html(frame: pd.DataFrame, title: str, note: str) -> str:
    """A CSV table as a self-contained HTML page: a sentence saying what it is, then every row and column
    (whole numbers in full, others to 4 significant digits, missing values as a dash; the CSV has them all in
    full)."""
    if frame.empty:
        body = f'<p>{_inline_html(note)}</p>\n<p class="note">The table is empty.</p>'
        return _html_page(title, body)
    kinds = ["num" if pd.api.types.is_numeric_dtype(frame[c]) and frame[c].dtype != bool else "text" for c in frame]
    head = "".join(f'<th class="{k}">{escape(str(c))}</th>' for c, k in zip(frame.columns, kinds, strict=True))
    rows = [
        "<tr>"
        + "".join(f'<td class="{k}">{escape(_html_value(v))}</td>' for v, k in zip(row, kinds, strict=True))
        + "</tr>"
        for row in frame.itertuples(index=False)
    ]
    table = f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(rows) + "\n</tbody>\n</table>"
    return _html_page(title, f"<p>{_inline_html(note)}</p>\n{table}")


STATS_NOTE = (
    "Paired tests of every configuration against the reference configuration: per case a two-sided Wilcoxon "
    "signed-rank test on the paired per-landmark TREs (averaged over seeds), across cases (`all`) a Wilcoxon "
    "test on the paired case means; Holm correction over the compared configurations. Columns: see "
    "results/README.md; `stats.csv` has every number unrounded."
)
CONFIGURATIONS_NOTE = (
    "The effective settings of every configuration (empty where a method has no such setting), the seeds it "
    "was run with, the devices its runs used and the package versions they recorded (`configurations.csv`)."
)


def write_tables(
    runs_dir: str | Path,
    out_dir: str | Path,
    order: Sequence[str] | None = None,
    compare_to: str | None = None,
    labels: dict[str, str] | None = None,
) -> list[Path]:
    """Read all metrics under ``runs_dir`` and write every table of :data:`TABLES` into ``out_dir``.

    ``compare_to``: the reference configuration of the paired tests (default: the first registered one in
    ``order``); ``labels``: configuration -> display name in the LaTeX tables. Returns the paths written.
    """
    data, landmarks = collect(runs_dir, order, compare_to)
    out = Path(out_dir)
    tests = data.tests if data.tests is not None else pd.DataFrame(columns=["configuration", "reference"])
    frames = {
        "tre_csv": data.summary,
        "folding_csv": folding_frame(data.summary),
        "tre_landmarks_csv": landmarks,
        "stats_csv": tests,
        "configurations_csv": data.configurations,
    }
    texts = {
        "tre_md": thesis_markdown(data, False, order),
        "tre_tex": thesis_latex(data, False, order, labels),
        "tre_snapped_md": thesis_markdown(data, True, order),
        "tre_snapped_tex": thesis_latex(data, True, order, labels),
        "folding_md": folding_markdown(folding_frame(data.summary)),
        "tre_exact_md": exact_markdown(data, order),
        "tre_exact_tex": exact_latex(data, order, labels),
    }
    texts |= {
        "tre_html": markdown_html(texts["tre_md"], HTML_TABLES["tre_html"]),
        "tre_snapped_html": markdown_html(texts["tre_snapped_md"], HTML_TABLES["tre_snapped_html"]),
        "tre_exact_html": markdown_html(texts["tre_exact_md"], HTML_TABLES["tre_exact_html"]),
        "folding_html": markdown_html(texts["folding_md"], HTML_TABLES["folding_html"]),
        "stats_html": frame_html(tests, HTML_TABLES["stats_html"], STATS_NOTE),
        "configurations_html": frame_html(data.configurations, HTML_TABLES["configurations_html"], CONFIGURATIONS_NOTE),
    }
    if set(frames) | set(texts) != set(TABLES):
        raise AssertionError("every table in TABLES is written exactly once")
    for key, frame in frames.items():
        write_csv(out / TABLES[key], frame)
    for key, text in texts.items():
        write_text(out / TABLES[key], text)
    return [out / name for name in TABLES.values()]
