"""Collect the evaluated runs: read and validate every ``metrics.json`` and return tidy frames.

Input: ``<runs_dir>/<configuration>/case<N>/metrics.json`` (written by ``rnr evaluate``). Every configuration
must have every case, and each record's configuration and case must match its folder; anything else is an
:class:`~rnr.io.InputError` naming the files. Rendering the frames into tables is rnr/tables.py's job.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from . import layout
from .io import InputError, read_json
from .layout import INITIAL

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
TRE_LANDMARK_COLUMNS = (
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


def per_landmark_frame(records: Sequence[dict[str, Any]], order: Sequence[str] | None = None) -> pd.DataFrame:
    """Tidy per-landmark TRE: one row per landmark x case x configuration (:data:`TRE_LANDMARK_COLUMNS`)."""
    parts = []
    for r in records:
        rows = pd.DataFrame(_get(r, "tre.per_landmark", r["_path"]))
        rows.insert(0, "method", r.get("method", ""))
        rows.insert(0, "configuration", r["configuration"])
        rows.insert(0, "case", int(r["case"]))
        parts.append(rows)
    frame = pd.concat(parts, ignore_index=True).reindex(columns=list(TRE_LANDMARK_COLUMNS))
    configs = configuration_order(frame["configuration"].tolist(), order)
    key = {c: i for i, c in enumerate(configs)}
    frame = frame.sort_values(
        ["configuration", "case", "landmark"],
        key=lambda s: s.map(key) if s.name == "configuration" else s,
        kind="stable",
    ).reset_index(drop=True)
    return frame
