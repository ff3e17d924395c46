"""Collect the evaluated runs: read and validate every ``metrics.json`` and return tidy frames.

Input: ``<runs_dir>/<configuration>/case<N>/seed<S>/metrics.json`` (written by ``rnr evaluate``; a run folder
without the seed level, ``<configuration>/case<N>/metrics.json``, is read as one run too). Every configuration
must have every case, each record's configuration, case and seed must match its folders, and all runs of a
configuration must have been made with the same settings (apart from the seed); anything else is an
:class:`~rnr.io.InputError` naming the files. Rendering the frames is rnr/reporting/tables.py's job.

Frames:

* :func:`run_frame`: one row per run (case x configuration x seed);
* :func:`per_landmark_frame`: one row per landmark x run (the tidy data for statistics and figures);
* :func:`exact_landmark_frame`: the same for the TRE on the exact landmark positions, where the dataset
  carries its exact motion (the phantom);
* :func:`summary_frame`: one row per case x configuration, seeds pooled (:data:`CONTRACT_COLUMNS` first);
* :func:`configurations_frame`: one row per configuration, its effective settings and provenance.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import layout
from ..io import InputError, read_json
from ..layout import INITIAL
from . import stats

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
#: Statistics of the seed-averaged per-landmark TRE (rnr.reporting.stats.case_summary).
TRE_SPREAD_COLUMNS = ("n_seeds", "tre_seed_std_mm", "tre_median_mm", "tre_p95_mm", "tre_max_mm")
#: Per-run values, averaged over the seeds of a case x configuration in :func:`summary_frame`.
RUN_COLUMNS = (
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
    "sdlogj",
    "iterations",
    "loss_relative_drop",
    "loss_noise_z",
    "mask_air_fraction",
    "mask_volume_l",
    "mask_n_components",
    "tre_exact_mean_mm",
    "tre_exact_std_mm",
    "dense_error_rms_mm",
    "dense_error_p95_mm",
    "dense_error_max_mm",
)
EXTRA_COLUMNS = ("method", "n_landmarks", *TRE_SPREAD_COLUMNS, *RUN_COLUMNS, "converged", "mask_method")
TRE_LANDMARK_COLUMNS = (
    "case",
    "configuration",
    "seed",
    "method",
    "landmark",
    "tre_mm",
    "tre_snapped_mm",
    "tre_legacy_mm",
    "dx_mm",
    "dy_mm",
    "dz_mm",
)
#: Columns of the per-landmark exact TRE (the phantom), the rows of tre_exact_landmarks.csv.
TRE_EXACT_LANDMARK_COLUMNS = (
    "case",
    "configuration",
    "seed",
    "method",
    "landmark",
    "tre_exact_mm",
    "dx_mm",
    "dy_mm",
    "dz_mm",
)
_CASE_DIR = re.compile(r"^case(\d+)$")
_SEED_DIR = re.compile(r"^seed(\d+)$")

RunKey = tuple[str, int, int | None]  # (configuration, case, seed folder or None)


# -- reading ------------------------------------------------------------------------------------------
def find_metrics(runs_dir: str | Path) -> dict[RunKey, Path]:
    """{(configuration, case, seed): metrics.json path} for every run folder under ``runs_dir``.

    Raises InputError when the runs folder is missing or holds no run, and when any configuration lacks a
    case that another one has, or a run folder lacks its metrics.json (the message lists every missing file).
    """
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise InputError(f"{runs_dir}: runs folder not found (expected <configuration>/case<N>/seed<S>/metrics.json)")
    found: dict[RunKey, Path] = {}
    configurations = []
    for config_dir in sorted(p for p in runs_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        configurations.append(config_dir.name)
        for case_dir in config_dir.iterdir():
            match = _CASE_DIR.match(case_dir.name)
            if not (case_dir.is_dir() and match):
                continue
            seeds = [(int(m.group(1)), d) for d in case_dir.iterdir() if d.is_dir() and (m := _SEED_DIR.match(d.name))]
            if seeds:
                for seed, seed_dir in seeds:
                    found[(config_dir.name, int(match.group(1)), seed)] = seed_dir / layout.METRICS_JSON
            else:
                found[(config_dir.name, int(match.group(1)), None)] = case_dir / layout.METRICS_JSON
    if not found:
        raise InputError(
            f"{runs_dir}: no runs found; expected folders <configuration>/case<N>/seed<S>/ holding "
            f"{layout.METRICS_JSON} (run 'rnr evaluate' first); found {_listing(runs_dir)}"
        )
    cases = sorted({case for _, case, _ in found})
    have = {(c, n) for c, n, _ in found}
    missing = [
        runs_dir / c / f"case{n}" / layout.METRICS_JSON for c in configurations for n in cases if (c, n) not in have
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

    Each record gets ``_path`` and ``_seed`` (the seed folder's number, else the record's seed, else 0). The
    configuration, case and seed in a record must match its folders.
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
    for (config, case, seed), path in sorted(found.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or 0)):
        record = read_json(path)
        if not isinstance(record, dict):
            raise InputError(f"{path}: expected a JSON object written by 'rnr evaluate'")
        if _get(record, "configuration", path) != config or int(_get(record, "case", path)) != case:
            raise InputError(
                f"{path}: expected configuration {config!r} and case {case} (from the folder names), "
                f"found configuration {record.get('configuration')!r} and case {record.get('case')}"
            )
        recorded = record.get("seed")
        if seed is not None and recorded is not None and int(recorded) != seed:
            raise InputError(f"{path}: expected seed {seed} (from the folder name), found seed {recorded}")
        record["_path"] = path
        record["_seed"] = seed if seed is not None else int(recorded or 0)
        records.append(record)
    return records


def configuration_order(names: Sequence[str], preferred: Sequence[str] | None = None) -> list[str]:
    """``initial`` first, then ``preferred`` order if given, else alphabetical."""
    names = list(dict.fromkeys(names))
    rest = [n for n in (preferred or sorted(names)) if n in names and n != INITIAL]
    return ([INITIAL] if INITIAL in names else []) + rest


def _sorted(frame: pd.DataFrame, order: Sequence[str] | None, keys: Sequence[str]) -> pd.DataFrame:
    configs = configuration_order(frame["configuration"].tolist(), order)
    rank = {c: i for i, c in enumerate(configs)}
    return frame.sort_values(
        ["configuration", *keys], key=lambda s: s.map(rank) if s.name == "configuration" else s, kind="stable"
    ).reset_index(drop=True)


# -- tidy frames ------------------------------------------------------------------------------------------
def run_frame(records: Sequence[dict[str, Any]], order: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per run (case x configuration x seed) with every per-run value."""
    rows = []
    for r in records:
        p = r["_path"]
        t, f = _get(r, "tre", p), _get(r, "folding", p)
        conv, mask, run = r.get("convergence") or {}, r.get("mask") or {}, r.get("run") or {}
        exact = r.get("exact") or {}
        exact_tre, dense = exact.get("tre") or {}, exact.get("dense") or {}
        rows.append(
            {
                "case": int(r["case"]),
                "configuration": r["configuration"],
                "seed": int(r["_seed"]),
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
                "sdlogj": f.get("sdlogj"),
                "iterations": run.get("iterations"),
                "loss_relative_drop": conv.get("relative_drop"),
                "loss_noise_z": conv.get("noise_z"),
                "converged": conv.get("converged"),
                "mask_method": mask.get("method"),
                "mask_air_fraction": mask.get("air_fraction"),
                "mask_volume_l": mask.get("volume_l"),
                "mask_n_components": mask.get("n_components"),
                "tre_exact_mean_mm": exact_tre.get("mean_mm"),
                "tre_exact_std_mm": exact_tre.get("std_mm"),
                "dense_error_rms_mm": dense.get("rms_mm"),
                "dense_error_p95_mm": dense.get("p95_mm"),
                "dense_error_max_mm": dense.get("max_mm"),
            }
        )
    return _sorted(pd.DataFrame(rows), order, ["case", "seed"])


def _tidy(records: Sequence[dict[str, Any]], rows_of, columns: Sequence[str], order) -> pd.DataFrame:
    """One row per landmark x run: each run's per-landmark records (``rows_of(record)``) after its keys."""
    parts = []
    for r in records:
        rows = pd.DataFrame(rows_of(r))
        rows.insert(0, "method", r.get("method", ""))
        rows.insert(0, "seed", int(r["_seed"]))
        rows.insert(0, "configuration", r["configuration"])
        rows.insert(0, "case", int(r["case"]))
        parts.append(rows)
    frame = pd.concat(parts, ignore_index=True).reindex(columns=list(columns))
    return _sorted(frame, order, ["case", "seed", "landmark"])


def per_landmark_frame(records: Sequence[dict[str, Any]], order: Sequence[str] | None = None) -> pd.DataFrame:
    """Tidy per-landmark TRE: one row per landmark x case x configuration x seed (:data:`TRE_LANDMARK_COLUMNS`)."""
    return _tidy(records, lambda r: _get(r, "tre.per_landmark", r["_path"]), TRE_LANDMARK_COLUMNS, order)


def _exact_rows(record: dict[str, Any]) -> list[dict[str, Any]]:
    rows = _get(record, "exact.tre", record["_path"]).get("per_landmark")
    if rows is None:
        raise InputError(
            f"{record['_path']}: expected key 'exact.tre.per_landmark' (the per-landmark exact TRE); the record "
            "was written by an older 'rnr evaluate': evaluate the run again"
        )
    return [{**row, "tre_exact_mm": row["tre_mm"]} for row in rows]


def exact_landmark_frame(records: Sequence[dict[str, Any]], order: Sequence[str] | None = None) -> pd.DataFrame:
    """Tidy per-landmark exact TRE (rnr/data/truth.py), one row per landmark x run like :func:`per_landmark_frame`
    (:data:`TRE_EXACT_LANDMARK_COLUMNS`); an empty frame when the dataset carries no exact motion.

    Raises InputError when some runs carry the exact record and others do not (one dataset either has its
    exact motion or not), or when a run's exact record lacks the per-landmark values (written by an older
    ``rnr evaluate``: evaluate it again).
    """
    have = [r for r in records if r.get("exact")]
    if not have:
        return pd.DataFrame(columns=list(TRE_EXACT_LANDMARK_COLUMNS))
    if len(have) != len(records):
        lacking = [str(r["_path"]) for r in records if not r.get("exact")]
        raise InputError(
            f"{len(lacking)} of {len(records)} runs have no exact-truth record, the others have one; expected all "
            f"or none (one dataset): {', '.join(lacking[:3])}{' ...' if len(lacking) > 3 else ''}"
        )
    return _tidy(records, _exact_rows, TRE_EXACT_LANDMARK_COLUMNS, order)


def _all_or_none(values: pd.Series) -> Any:
    """False when any run did not converge, True when all did, None when undetermined."""
    known = [bool(v) for v in values if v is not None and not (isinstance(v, float) and np.isnan(v))]
    if not known:
        return None
    return all(known)


def summary_frame(records: Sequence[dict[str, Any]], order: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per (case, configuration), seeds pooled: :data:`CONTRACT_COLUMNS` then :data:`EXTRA_COLUMNS`.

    TRE mean, std, median, 95th percentile and maximum are those of the per-landmark TRE averaged over seeds
    (rnr.reporting.stats.case_summary, std ddof = 1); ``tre_seed_std_mm`` is the std over seeds of the case mean (NaN
    with one seed). Every other number is the mean over the seeds of the per-run value; ``converged`` is True only
    when every seed's run converged; ``device`` lists the devices the seeds ran on.
    """
    runs = run_frame(records, order)
    landmarks = per_landmark_frame(records, order)
    spread = stats.case_summary(landmarks, "tre_mm").merge(
        stats.case_summary(landmarks, "tre_snapped_mm")[["case", "configuration", "tre_snapped_mean_mm"]],
        on=["case", "configuration"],
    )
    numeric = ["tre_x_mm", "tre_y_mm", "tre_z_mm", "folding_fraction", "runtime_s", *RUN_COLUMNS]
    groups = runs.groupby(["case", "configuration"], sort=False)
    pooled = groups[numeric].agg(lambda s: pd.to_numeric(s, errors="coerce").mean()).reset_index()
    pooled["device"] = groups["device"].agg(lambda s: ", ".join(dict.fromkeys(map(str, s)))).to_numpy()
    pooled["method"] = groups["method"].first().to_numpy()
    pooled["converged"] = groups["converged"].agg(_all_or_none).to_numpy()
    pooled["mask_method"] = groups["mask_method"].first().to_numpy()
    frame = pooled.merge(spread, on=["case", "configuration"], how="left")
    frame = frame.reindex(columns=list(dict.fromkeys(CONTRACT_COLUMNS + EXTRA_COLUMNS)))
    return _sorted(frame, order, ["case"])


#: Settings that describe a run but do not make two runs of a configuration different.
_PER_RUN_SETTINGS = ("seed", "device")


def configurations_frame(records: Sequence[dict[str, Any]], order: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per configuration: its method, seeds, every effective setting (one column per key), devices
    and package versions of its runs.

    Raises InputError when runs of one configuration were made with different settings (an edited
    configuration, a stale run): such a column would mix two set-ups under one name.
    """
    rows = []
    by_config: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_config.setdefault(r["configuration"], []).append(r)
    for config, runs in by_config.items():
        settings = {}
        for r in runs:
            own = dict(((r.get("run") or {}).get("settings")) or {})
            key = json.dumps({k: v for k, v in own.items() if k not in _PER_RUN_SETTINGS}, sort_keys=True)
            settings.setdefault(key, []).append(r["_path"])
        if len(settings) > 1:
            variants = "; ".join(
                f"{', '.join(str(p) for p in paths[:3])}{' ...' if len(paths) > 3 else ''} with {key}"
                for key, paths in settings.items()
            )
            raise InputError(
                f"configuration {config!r}: its runs were made with different settings (an edited configuration "
                f"or a stale run; rerun the workflow to redo them): {variants}"
            )
        effective = json.loads(next(iter(settings)))
        versions = {json.dumps(((r.get("run") or {}).get("versions")) or {}, sort_keys=True) for r in runs}
        rows.append(
            {
                "configuration": config,
                "method": runs[0].get("method", ""),
                "seeds": " ".join(str(s) for s in sorted({int(r["_seed"]) for r in runs})),
                "n_runs": len(runs),
                **{
                    k: json.dumps(v) if isinstance(v, list | dict) else v for k, v in effective.items() if k != "method"
                },
                "devices": ", ".join(sorted({str(r.get("device")) for r in runs})),
                "versions": " | ".join(
                    ", ".join(f"{k} {v}" for k, v in json.loads(text).items()) or "unknown" for text in sorted(versions)
                ),
            }
        )
    frame = pd.DataFrame(rows)
    configs = configuration_order(frame["configuration"].tolist(), order)
    return frame.set_index("configuration").loc[configs].reset_index()
