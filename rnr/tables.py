"""Aggregate every run's ``metrics.json`` into the result tables (architecture.md, "Contracts").

Input: ``<runs_dir>/<configuration>/case<N>/metrics.json`` (written by ``rnr evaluate``). Outputs in
``<out_dir>``:

* ``tre.csv`` - one row per (case, configuration), ``initial`` included, with :data:`CONTRACT_COLUMNS`
  first and further columns after them;
* ``tre.md`` / ``tre.tex`` - the thesis-style table of continuous TRE (cases as rows plus a mean row,
  configurations as columns, ``initial`` first, cells ``mean ± std``);
* ``tre_snapped.md`` / ``tre_snapped.tex`` - the same for snapped TRE;
* ``folding.csv`` / ``folding.md`` - folding fraction, min det J, runtime and device per case x configuration;
* ``tre_landmarks.csv`` - one row per landmark x case x configuration (tidy data for the figures).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import layout
from .io import InputError, read_json, write_csv, write_text

INITIAL = "initial"
CONTRACT_COLUMNS = (
    "case",
    "configuration",
    "tre_mean_mm",
    "tre_std_mm",
    "tre_x_mm",
    "tre_y_mm",
    "tre_z_mm",
    "tre_snapped_mean_mm",
    "folding_fraction",
    "runtime_s",
    "device",
)
EXTRA_COLUMNS = (
    "method",
    "n_landmarks",
    "tre_x_std_mm",
    "tre_y_std_mm",
    "tre_z_std_mm",
    "tre_snapped_std_mm",
    "tre_legacy_mean_mm",
    "tre_legacy_std_mm",
    "folding_count",
    "folding_n_points",
    "min_det",
    "std_det",
)
LANDMARK_COLUMNS = (
    "case",
    "configuration",
    "method",
    "landmark",
    "tre_mm",
    "tre_snapped_mm",
    "tre_legacy_mm",
    "dx_mm",
    "dy_mm",
    "dz_mm",
)
_CASE_DIR = re.compile(r"^case(\d+)$")


# -- reading ------------------------------------------------------------------------------------------
def find_metrics(runs_dir: str | Path) -> dict[tuple[str, int], Path]:
    """{(configuration, case): metrics.json path} for every ``<configuration>/case<N>`` folder.

    Raises InputError when the runs folder is missing or holds no run, and when any configuration lacks a
    case that another one has, or a run folder lacks its metrics.json (the message lists every missing file).
    """
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise InputError(f"{runs_dir}: runs folder not found (expected <configuration>/case<N>/metrics.json)")
    found: dict[tuple[str, int], Path] = {}
    configurations = []
    for config_dir in sorted(p for p in runs_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        configurations.append(config_dir.name)
        for case_dir in config_dir.iterdir():
            match = _CASE_DIR.match(case_dir.name)
            if case_dir.is_dir() and match:
                found[(config_dir.name, int(match.group(1)))] = case_dir / layout.METRICS_JSON
    if not found:
        raise InputError(
            f"{runs_dir}: no runs found; expected folders <configuration>/case<N>/ holding "
            f"{layout.METRICS_JSON} (run 'rnr evaluate' first); found {_listing(runs_dir)}"
        )
    cases = sorted({case for _, case in found})
    missing = [
        runs_dir / c / f"case{n}" / layout.METRICS_JSON for c in configurations for n in cases if (c, n) not in found
    ]
    missing += [p for p in found.values() if not p.is_file()]
    if missing:
        raise InputError(
            f"{runs_dir}: every configuration needs metrics for every case ({', '.join(map(str, cases))}); "
            f"missing: {', '.join(str(p) for p in sorted(missing))}"
        )
    return found


def _listing(folder: Path, limit: int = 10) -> str:
    names = sorted(p.name for p in folder.iterdir())
    if not names:
        return "an empty folder"
    return ", ".join(names[:limit]) + (" ..." if len(names) > limit else "")


def _get(record: dict, dotted: str, path: Path) -> Any:
    value: Any = record
    for key in dotted.split("."):
        if not isinstance(value, dict) or key not in value:
            raise InputError(f"{path}: expected key {dotted!r} in a metrics record written by 'rnr evaluate'")
        value = value[key]
    return value


def load_metrics(runs_dir: str | Path, configurations: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Read every metrics.json under ``runs_dir`` (optionally only ``configurations``, in that order).

    Each record gets ``_path``. The configuration and case in a record must match its folder.
    """
    found = find_metrics(runs_dir)
    if configurations:
        unknown = [c for c in configurations if c not in {k[0] for k in found}]
        if unknown:
            raise InputError(
                f"{runs_dir}: no runs for configuration(s) {unknown}; found {sorted({k[0] for k in found})}"
            )
        found = {k: v for k, v in found.items() if k[0] in configurations}
    records = []
    for (config, case), path in found.items():
        record = read_json(path)
        if not isinstance(record, dict):
            raise InputError(f"{path}: expected a JSON object written by 'rnr evaluate'")
        if _get(record, "configuration", path) != config or int(_get(record, "case", path)) != case:
            raise InputError(
                f"{path}: expected configuration {config!r} and case {case} (from the folder names), "
                f"found configuration {record.get('configuration')!r} and case {record.get('case')}"
            )
        record["_path"] = path
        records.append(record)
    return records


def configuration_order(names: Sequence[str], preferred: Sequence[str] | None = None) -> list[str]:
    """``initial`` first, then ``preferred`` order if given, else alphabetical."""
    names = list(dict.fromkeys(names))
    rest = [n for n in (preferred or sorted(names)) if n in names and n != INITIAL]
    return ([INITIAL] if INITIAL in names else []) + rest


# -- tidy frames ------------------------------------------------------------------------------------------
def summary_frame(records: Sequence[dict[str, Any]], order: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per (case, configuration): :data:`CONTRACT_COLUMNS` then :data:`EXTRA_COLUMNS`."""
    rows = []
    for r in records:
        p = r["_path"]
        t, f = _get(r, "tre", p), _get(r, "folding", p)
        rows.append(
            {
                "case": int(r["case"]),
                "configuration": r["configuration"],
                "tre_mean_mm": _get(r, "tre.mean_mm", p),
                "tre_std_mm": _get(r, "tre.std_mm", p),
                "tre_x_mm": _get(r, "tre.x_mm", p),
                "tre_y_mm": _get(r, "tre.y_mm", p),
                "tre_z_mm": _get(r, "tre.z_mm", p),
                "tre_snapped_mean_mm": _get(r, "tre.snapped_mean_mm", p),
                "folding_fraction": _get(r, "folding.fraction", p),
                "runtime_s": _get(r, "runtime_s", p),
                "device": _get(r, "device", p),
                "method": r.get("method", ""),
                "n_landmarks": t.get("n_landmarks"),
                "tre_x_std_mm": t.get("x_std_mm"),
                "tre_y_std_mm": t.get("y_std_mm"),
                "tre_z_std_mm": t.get("z_std_mm"),
                "tre_snapped_std_mm": t.get("snapped_std_mm"),
                "tre_legacy_mean_mm": t.get("legacy_mean_mm"),
                "tre_legacy_std_mm": t.get("legacy_std_mm"),
                "folding_count": f.get("count"),
                "folding_n_points": f.get("n_points"),
                "min_det": f.get("min_det"),
                "std_det": f.get("std_det"),
            }
        )
    frame = pd.DataFrame(rows, columns=list(CONTRACT_COLUMNS + EXTRA_COLUMNS))
    configs = configuration_order(frame["configuration"].tolist(), order)
    frame["configuration"] = pd.Categorical(frame["configuration"], categories=configs, ordered=True)
    frame = frame.sort_values(["configuration", "case"]).reset_index(drop=True)
    frame["configuration"] = frame["configuration"].astype(str)
    return frame


def landmark_frame(records: Sequence[dict[str, Any]], order: Sequence[str] | None = None) -> pd.DataFrame:
    """Tidy per-landmark TRE: one row per landmark x case x configuration (:data:`LANDMARK_COLUMNS`)."""
    parts = []
    for r in records:
        rows = pd.DataFrame(_get(r, "tre.per_landmark", r["_path"]))
        rows.insert(0, "method", r.get("method", ""))
        rows.insert(0, "configuration", r["configuration"])
        rows.insert(0, "case", int(r["case"]))
        parts.append(rows)
    frame = pd.concat(parts, ignore_index=True).reindex(columns=list(LANDMARK_COLUMNS))
    configs = configuration_order(frame["configuration"].tolist(), order)
    key = {c: i for i, c in enumerate(configs)}
    frame = frame.sort_values(
        ["configuration", "case", "landmark"],
        key=lambda s: s.map(key) if s.name == "configuration" else s,
        kind="stable",
    ).reset_index(drop=True)
    return frame


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
    written = {
        "tre.csv": summary,
        "folding.csv": folding_frame(summary),
        "tre_landmarks.csv": landmark_frame(records, order),
    }
    paths = []
    for name, frame in written.items():
        write_csv(out / name, frame)
        paths.append(out / name)
    texts = {
        "tre.md": thesis_markdown(summary, False, order),
        "tre.tex": thesis_latex(summary, False, order),
        "tre_snapped.md": thesis_markdown(summary, True, order),
        "tre_snapped.tex": thesis_latex(summary, True, order),
        "folding.md": folding_markdown(folding_frame(summary)),
    }
    for name, text in texts.items():
        write_text(out / name, text)
        paths.append(out / name)
    return paths
