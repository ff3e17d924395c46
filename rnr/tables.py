"""Render the collected results (rnr/results.py) as the thesis-style tables: Markdown, LaTeX and CSV.

Outputs in ``<out_dir>`` (:data:`TABLES`, the one list of their names):

* ``tre.csv`` - one row per (case, configuration), ``initial`` included, with the contract columns first
  (rnr.results.CONTRACT_COLUMNS) and further columns after them;
* ``tre.md`` / ``tre.tex`` - the thesis-style table of continuous TRE (cases as rows plus a mean row,
  configurations as columns, ``initial`` first, cells ``mean ± std``);
* ``tre_snapped.md`` / ``tre_snapped.tex`` - the same for snapped TRE;
* ``folding.csv`` / ``folding.md`` - folding fraction, min det J, runtime and device per case x configuration;
* ``tre_landmarks.csv`` - one row per landmark x case x configuration (tidy data for the figures).

results/README.md explains every column and convention.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .io import write_csv, write_text
from .layout import INITIAL
from .results import configuration_order, load_metrics, per_landmark_frame, summary_frame

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
}


# -- thesis-style tables ---------------------------------------------------------------------------------
def conventions_text(summary: pd.DataFrame, snapped: bool) -> str:
    """The footer stating what every number in a TRE table means."""
    n = sorted(summary["n_landmarks"].dropna().astype(int).unique())
    n_text = f"the {n[0]} landmarks" if len(n) == 1 else "the landmarks"
    kind = (
        "snapped TRE: each mapped landmark rounded to the nearest voxel before measuring (numpy.round)"
        if snapped
        else "continuous TRE: mapped landmarks used as is, no rounding"
    )
    return (
        f"TRE in mm, {kind}. Landmarks in 0-based voxel indices, mm = index x spacing per axis (x, y, z). "
        f"Cells: mean ± std over {n_text} of one case, std with ddof = 1. Mean row: mean over cases of the "
        f"per-case means. `{INITIAL}`: identity map (no registration). "
        f"Bold: lowest mean among the registered "
        f"configurations in that row (not `{INITIAL}`; only when at least two are compared)."
    )


def _cells(summary: pd.DataFrame, mean_col: str, std_col: str, configs: list[str]) -> tuple[list, list]:
    """Row labels and cell values (mean, std or None) of the thesis table, mean row last."""
    cases = sorted(summary["case"].unique())
    table = summary.set_index(["case", "configuration"])
    rows = []
    for case in cases:
        rows.append(
            (
                str(case),
                [(float(table.loc[(case, c), mean_col]), float(table.loc[(case, c), std_col])) for c in configs],
            )
        )
    means = summary.groupby("configuration")[mean_col].mean()
    rows.append(("mean", [(float(means[c]), None) for c in configs]))
    return cases, rows


def _bold_mask(values: list[tuple[float, float | None]], configs: list[str]) -> list[bool]:
    """Lowest mean (at the shown 2 decimals; ties all bold) among non-initial configurations, if >= 2."""
    candidates = [i for i, c in enumerate(configs) if c != INITIAL]
    if len(candidates) < 2:
        return [False] * len(configs)
    best = min(round(values[i][0], 2) for i in candidates)
    return [i in candidates and round(values[i][0], 2) == best for i in range(len(configs))]


def _fmt(mean: float, std: float | None, sep: str) -> str:
    if not np.isfinite(mean):
        return "n/a"
    return f"{mean:.2f}" if std is None or not np.isfinite(std) else f"{mean:.2f}{sep}{std:.2f}"


def thesis_markdown(summary: pd.DataFrame, snapped: bool = False, order: Sequence[str] | None = None) -> str:
    """Markdown thesis table: caption line, table (rows: cases, mean; columns: configurations), footer."""
    mean_col, std_col = ("tre_snapped_mean_mm", "tre_snapped_std_mm") if snapped else ("tre_mean_mm", "tre_std_mm")
    configs = configuration_order(summary["configuration"].tolist(), order)
    _, rows = _cells(summary, mean_col, std_col, configs)
    title = "Snapped TRE" if snapped else "TRE"
    lines = [
        f"**{title} (mm) per case, mean ± std.**",
        "",
        "| case | " + " | ".join(configs) + " |",
        "|---:|" + "---:|" * len(configs),
    ]
    for label, values in rows:
        bold = _bold_mask(values, configs)
        cells = [f"**{_fmt(m, s, ' ± ')}**" if b else _fmt(m, s, " ± ") for (m, s), b in zip(values, bold, strict=True)]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", conventions_text(summary, snapped), ""]
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


def _tex_escape(text: str) -> str:
    """Escape LaTeX special characters of plain text (configuration names such as ``rnr_mask30``)."""
    return "".join(_TEX_SPECIAL.get(ch, ch) for ch in text)


def thesis_latex(summary: pd.DataFrame, snapped: bool = False, order: Sequence[str] | None = None) -> str:
    """LaTeX (booktabs) version of :func:`thesis_markdown`, caption holding the conventions."""
    mean_col, std_col = ("tre_snapped_mean_mm", "tre_snapped_std_mm") if snapped else ("tre_mean_mm", "tre_std_mm")
    configs = configuration_order(summary["configuration"].tolist(), order)
    _, rows = _cells(summary, mean_col, std_col, configs)
    title = "Snapped TRE" if snapped else "TRE"
    caption = _tex_escape(conventions_text(summary, snapped).replace("`", ""))
    caption = caption.replace("±", r"$\pm$").replace("index x spacing", r"index $\times$ spacing")
    lines = [
        r"\begin{table}[ht]",
        r"\centering",
        rf"\caption{{{title} (mm) per case, mean $\pm$ std. {caption}}}",
        rf"\label{{tab:{'tre-snapped' if snapped else 'tre'}}}",
        r"\begin{tabular}{r" + "c" * len(configs) + "}",
        r"\toprule",
        "Case & " + " & ".join(_tex_escape(c) for c in configs) + r" \\",
        r"\midrule",
    ]
    for label, values in rows:
        if label == "mean":
            lines.append(r"\midrule")
        bold = _bold_mask(values, configs)
        pm = r" $\pm$ "
        cells = [
            (r"\textbf{" + _fmt(m, s, pm) + "}" if b else _fmt(m, s, pm))
            for (m, s), b in zip(values, bold, strict=True)
        ]
        lines.append(f"{label.capitalize()} & " + " & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)


def folding_frame(summary: pd.DataFrame) -> pd.DataFrame:
    """Folding and runtime per case x configuration, in display units."""
    return pd.DataFrame(
        {
            "case": summary["case"],
            "configuration": summary["configuration"],
            "folding_percent": 100.0 * summary["folding_fraction"].astype(float),
            "folding_count": summary["folding_count"],
            "n_points": summary["folding_n_points"],
            "min_det": summary["min_det"],
            "runtime_s": summary["runtime_s"],
            "device": summary["device"],
        }
    )


def _num(value: Any, fmt: str) -> str:
    """Format a number; missing values (e.g. no run record, so no runtime) read 'n/a'."""
    if value is None or pd.isna(value):
        return "n/a"
    return format(int(value) if fmt == "d" else float(value), fmt)


def folding_markdown(folding: pd.DataFrame) -> str:
    """Markdown table of :func:`folding_frame` with a footer stating what the numbers are."""
    lines = [
        "**Folding and runtime per case and configuration.**",
        "",
        "| case | configuration | folding (%) | folded / points | min det J | runtime (s) | device |",
        "|---:|---|---:|---:|---:|---:|---|",
    ]
    for r in folding.itertuples(index=False):
        lines.append(
            f"| {r.case} | {r.configuration} | {_num(r.folding_percent, '.4f')} | "
            f"{_num(r.folding_count, 'd')} / {_num(r.n_points, 'd')} | {_num(r.min_det, '.3f')} | "
            f"{_num(r.runtime_s, '.1f')} | {r.device} |"
        )
    lines += [
        "",
        "Folding: percentage of T00-mask voxels (every voxel of the mask, none sampled) where the "
        "determinant of the Jacobian of the full map is <= 0; min det J over the same voxels. Runtime: wall "
        f"time of the registration from its run record (0 for `{INITIAL}`, n/a without a run record); "
        "device: where it ran.",
        "",
    ]
    return "\n".join(lines)


def write_tables(runs_dir: str | Path, out_dir: str | Path, order: Sequence[str] | None = None) -> list[Path]:
    """Read all metrics under ``runs_dir`` and write every table into ``out_dir``; return the paths."""
    records = load_metrics(runs_dir, order)
    summary = summary_frame(records, order)
    out = Path(out_dir)
    frames = {
        "tre_csv": summary,
        "folding_csv": folding_frame(summary),
        "tre_landmarks_csv": per_landmark_frame(records, order),
    }
    texts = {
        "tre_md": thesis_markdown(summary, False, order),
        "tre_tex": thesis_latex(summary, False, order),
        "tre_snapped_md": thesis_markdown(summary, True, order),
        "tre_snapped_tex": thesis_latex(summary, True, order),
        "folding_md": folding_markdown(folding_frame(summary)),
    }
    if set(frames) | set(texts) != set(TABLES):
        raise AssertionError("every table in TABLES is written exactly once")
    for key, frame in frames.items():
        write_csv(out / TABLES[key], frame)
    for key, text in texts.items():
        write_text(out / TABLES[key], text)
    return [out / name for name in TABLES.values()]
