"""Evaluate one fitted map on one converted case: the ``metrics.json`` record and the per-run figures.

:func:`compute_metrics` is pure computation (a ConvertedCase, a Transform and a mask in, a dict out);
:func:`evaluate_run` adds the file handling of ``rnr evaluate`` (checkpoint, run record, outputs).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import coords, layout
from ..data.case import ConvertedCase, check_checkpoint_case, load_case
from ..data.segment import read_mask_record
from ..data.truth import load_case_truth
from ..fitting.phases import PAIRINGS
from ..fitting.transform import DEFAULT_CHUNK, IdentityTransform, Transform
from ..io import InputError, read_csv, read_json, write_json
from ..layout import INITIAL, INITIAL_SEED
from ..methods.table import load_transform
from ..runtime import resolve_device
from . import metrics, panels
from .convergence import convergence, describe
from .truth import exact_metrics
from .warp import slice_points, warp_slice

SCHEMA = "rnr-metrics/1"


@dataclass(frozen=True)
class RunInfo:
    """What the run record / checkpoint says about the run being evaluated."""

    configuration: str
    method: str
    pairing: str
    runtime_s: float | None
    device: str
    record: dict[str, Any] | None
    settings: dict[str, Any] = field(default_factory=dict)


def run_info(
    run_dir: Path, metadata: dict[str, Any], transform: Transform, identity: bool, case: ConvertedCase
) -> RunInfo:
    """Configuration, method, pairing, runtime and device of a run: from ``run.json``, else the checkpoint.

    ``--identity`` runs are the configuration ``initial``: runtime 0, device ``none``. A run record whose case
    differs from the case being evaluated is an error (it would silently score the wrong case).
    """
    if identity:
        return RunInfo(INITIAL, "identity", "seed", 0.0, "none", None, {})
    path = run_dir / layout.RUN_JSON
    record = read_json(path) if path.is_file() else None
    if record is not None and not isinstance(record, dict):
        raise InputError(f"{path}: expected a JSON object (the run record of 'rnr register')")
    rec = record or {}
    settings = rec.get("settings") or metadata.get("settings") or {}
    if "case" in rec and int(rec["case"]) != case.case:
        raise InputError(
            f"{path}: run record is for case {rec['case']}, but the case folder {case.path} is case {case.case}"
        )
    configuration = rec.get("configuration") or metadata.get("configuration") or run_dir.parent.name
    method = rec.get("method") or settings.get("method") or metadata.get("method") or transform.kind
    wall = rec.get("wall_s")
    pairing = settings.get("pairing", "seed")
    if pairing not in PAIRINGS:
        where = path if record is not None else run_dir / layout.CHECKPOINT
        raise InputError(f"{where}: setting 'pairing' must be one of {PAIRINGS}, found {pairing!r}")
    return RunInfo(
        str(configuration),
        str(method),
        str(pairing),
        None if wall is None else float(wall),
        str(rec.get("device", "unknown")),
        record,
        dict(settings),
    )


def _finite(value: float) -> float | None:
    """JSON has no NaN: undefined values (e.g. the std of one point) are written as null."""
    return float(value) if value is not None and math.isfinite(value) else None


def _clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, float | np.floating):
        return _finite(float(obj))
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def compute_metrics(
    case: ConvertedCase,
    transform: Transform,
    mask_zyx: np.ndarray,
    pairing: str = "seed",
    chunk: int = DEFAULT_CHUNK,
    step_folding: bool = True,
) -> dict[str, Any]:
    """TRE (continuous, snapped, legacy, per axis, per landmark), intermediate TRE and folding of one map.

    Args:
        case: the converted case (landmarks, Sampled4D, geometry).
        transform: phi on the case's T00 grid.
        mask_zyx: bool T00 lung mask (nz, ny, nx); folding is evaluated on every voxel of it.
        pairing: ``seed`` or ``trajectory`` (rnr/fitting/phases.py) for the intermediate TRE.
        step_folding: also record the folding of every phi_n (for RNR the one pass computes them anyway).
    Returns:
        ``{"tre": {...}, "intermediate": {...} | None, "folding": {...}, "exact": {...} | None}`` as written
        into metrics.json; ``exact`` (rnr/data/truth.py) where the case carries its exact motion.
    """
    if tuple(transform.size_xyz) != tuple(case.size_xyz) or not np.allclose(
        transform.spacing_xyz, case.spacing_xyz, atol=1e-3
    ):
        raise InputError(
            f"{case.path}: the map was fitted on a grid of size {transform.size_xyz}, spacing "
            f"{transform.spacing_xyz} mm, but the case has size {case.size_xyz}, spacing "
            f"{case.spacing_xyz} mm"
        )
    source, target = case.landmarks("T00"), case.landmarks("T50")
    result = metrics.landmark_tre(transform, source, target, case.spacing_xyz)
    legacy = metrics.legacy_tre(transform, source, target, case.spacing_xyz)
    cont, snapped = result.continuous, result.snapped
    tre = {
        "n_landmarks": cont.n,
        "ddof": metrics.DDOF,
        **cont.summary(),
        **snapped.summary("snapped_"),
        "legacy_mean_mm": legacy.mean_mm,
        "legacy_std_mm": legacy.std_mm,
        "per_landmark": [
            {
                "landmark": i,
                "tre_mm": float(cont.per_landmark_mm[i]),
                "tre_snapped_mm": float(snapped.per_landmark_mm[i]),
                "tre_legacy_mm": float(legacy.per_landmark_mm[i]),
                "dx_mm": float(cont.diff_mm[i, 0]),
                "dy_mm": float(cont.diff_mm[i, 1]),
                "dz_mm": float(cont.diff_mm[i, 2]),
            }
            for i in range(cont.n)
        ],
    }

    intermediate = None
    sampled = {p: case.sampled4d(p) for p in layout.PHASES}
    steps = metrics.intermediate_tre(transform, sampled, pairing, case.spacing_xyz)
    if steps:
        intermediate = {"pairing": pairing, "steps": steps}

    points = coords.mask_points(mask_zyx)
    if step_folding:
        # One pass gives every phi_n and its det J at every mask voxel (rnr/fitting/jet.py for RNR).
        mapped, detj = transform.map_steps_and_detj(points, chunk=chunk)
        stats = [metrics.det_stats(d) for d in detj]
        mapped_full = mapped[-1]
    else:
        stats = [metrics.folding(transform, points, chunk=chunk)]
        mapped_full = None
    folding = {**stats[-1].to_dict(), "ddof": metrics.DDOF, "per_step": metrics.step_records(stats)}
    truth = load_case_truth(case)
    exact = exact_metrics(transform, truth, mask_zyx, pairing, mapped_full) if truth is not None else None
    return {"tre": tre, "intermediate": intermediate, "folding": folding, "exact": exact}


def panel_pairs(
    case: ConvertedCase, transform: Transform, pairing: str, full_map_only: bool = False
) -> list[tuple[int, str, str, int | None]]:
    """(step number, fixed phase, moving phase, transform step) for every slice panel.

    With all phases present and a map with intermediate steps: one panel per phi_n under ``pairing`` (the
    landmark source phase is the fixed image, the target phase the moving one). Otherwise, or with
    ``full_map_only``, only T00 / T50.
    """
    with_steps = case.has_intermediate and not full_map_only
    pairs = metrics.landmark_pairs_of(transform, pairing) if with_steps else []
    if pairs:
        return [(p.interval, p.source, p.target, p.step) for p in pairs]
    return [(transform.n_steps, "T00", "T50", None)]


def write_run_figures(
    case: ConvertedCase,
    transform: Transform,
    mask_zyx: np.ndarray,
    info: RunInfo,
    run_dir: Path,
    label: str | None = None,
) -> list[Path]:
    """Slice panels per step, the det J slice panel and (when ``loss.csv`` exists) the loss curve; their
    titles name the configuration by ``label`` (its display label; default: its name).

    The identity map (``initial``) gets only its T00 / T50 slice panel: its steps all show the unregistered
    images and its det J is 1 everywhere, so further panels would repeat what the one shows.
    """
    out = run_dir / layout.FIGURES_DIR
    identity = info.configuration == INITIAL
    geom = panels.slice_geometry(case.size_xyz, case.spacing_xyz, mask_zyx)
    label = f"case {case.case}, {label or info.configuration}"
    views_cache: dict[str, dict[str, np.ndarray]] = {}
    moving_phase, moving = None, None
    written: list[Path] = []
    for n, fixed_phase, mov_phase, step in panel_pairs(case, transform, info.pairing, full_map_only=identity):
        if fixed_phase not in views_cache:
            views_cache[fixed_phase] = panels.take_views(case.image(fixed_phase), geom)
        if mov_phase != moving_phase:
            moving_phase, moving = mov_phase, case.image(mov_phase)
            views_cache[mov_phase] = panels.take_views(moving, geom)
        warped = {v: warp_slice(transform, moving, v, geom.index[v], step) for v in panels.VIEWS}
        if identity:
            how = "identity map (no registration)"
        else:
            how = "the full map $\\varphi$" if step is None else f"$\\varphi_{n}$ (step {n})"
            if step is not None and (fixed_phase, mov_phase) == ("T00", "T50"):
                # The step that spans T00 -> T50 is the full map: the title says so, as the caption does.
                how = f"the full map $\\varphi$ ($= \\varphi_{n}$, step {n})"
        title = f"{label}: fixed {fixed_phase}, moving {mov_phase} warped by {how}"
        written += panels.step_panel(
            out / f"slices_{fixed_phase}_{mov_phase}.png",
            geom,
            views_cache[fixed_phase],
            views_cache[mov_phase],
            warped,
            fixed_phase,
            mov_phase,
            title,
        )
    if identity:
        return written
    det = {}
    for view in panels.VIEWS:
        pts, shape = slice_points(case.size_xyz, view, geom.index[view])
        det[view] = transform.jacobian_det_voxels(pts).reshape(shape)
    written += panels.detj_panel(
        out / "detj.png",
        geom,
        det,
        mask_zyx,
        # The panels' ranges are per slice: the title says so (folding.csv has them over the whole mask).
        f"{label}: det J of the full map $\\varphi$, min and max per slice (green: lung mask outline; black: "
        "det J <= 0)",
    )
    loss_path = run_dir / layout.LOSS_CSV
    log = read_csv(loss_path) if loss_path.is_file() else None
    # Methods that fit nothing (identity, field) write a log without rows: there is no curve to draw.
    if log is not None and len(log):
        try:
            written += panels.loss_curve(out / "loss.png", log, f"{label}: optimisation log")
        except ValueError as exc:
            raise InputError(f"{loss_path}: expected a loss log with numeric columns ({exc})") from None
    return written


def run_convergence(run_dir: Path) -> dict[str, Any] | None:
    """The convergence figures of the run's loss log (rnr/evaluation/convergence.py), or None without a log."""
    path = run_dir / layout.LOSS_CSV
    if not path.is_file():
        return None
    log = read_csv(path)
    if "loss" not in log.columns:
        raise InputError(f"{path}: expected a loss log with a 'loss' column, found columns {list(log.columns)}")
    result = convergence(log)
    values = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in result.to_dict().items()}
    return {**values, "verdict": describe(result)}


def evaluate_run(
    case_dir: str | Path,
    run_dir: str | Path,
    mask_path: str | Path | None = None,
    identity: bool = False,
    device: str = "auto",
    figures: bool = True,
    chunk: int = DEFAULT_CHUNK,
    step_folding: bool = True,
    label: str | None = None,
) -> dict[str, Any]:
    """``rnr evaluate``: one run's metrics into ``metrics.json`` plus the figures; returns the record.
    ``label``: the configuration's display label, for the figures' titles (default: its name)."""
    start = time.perf_counter()
    case = load_case(case_dir)
    run_dir = Path(run_dir)
    mask_file = Path(mask_path) if mask_path is not None else case.path / layout.MASK_T00
    mask = case.load_mask(mask_file)
    dev = resolve_device(device)
    if identity:
        transform: Transform = IdentityTransform(case.size_xyz, case.spacing_xyz).to(dev)
        metadata: dict[str, Any] = {}
        checkpoint = None
    else:
        checkpoint = run_dir / layout.CHECKPOINT
        transform, metadata = load_transform(checkpoint, dev)
        # A checkpoint copied from another case's run folder must not be scored against this case.
        check_checkpoint_case(metadata, transform.size_xyz, transform.spacing_xyz, case, checkpoint)
    info = run_info(run_dir, metadata, transform, identity, case)
    values = compute_metrics(case, transform, mask, info.pairing, chunk, step_folding)
    if values["intermediate"] is not None:
        # Whether phi_1..phi_N-1 were fitted to the intermediate phases at all (settings 'intermediate';
        # null when unknown): without them the per-step TRE describes untrained intermediate maps.
        values["intermediate"]["fitted_with_intermediate_phases"] = info.settings.get("intermediate")
    run = info.record or {}
    record = {
        "schema": SCHEMA,
        "case": case.case,
        "configuration": info.configuration,
        "seed": INITIAL_SEED if identity else info.settings.get("seed"),
        "method": info.method,
        "transform_kind": transform.kind,
        "pairing": info.pairing,
        "conventions": metrics.CONVENTIONS,
        **values,
        "runtime_s": info.runtime_s,
        "device": info.device,
        "run": {
            k: run.get(k)
            for k in (
                "iterations",
                "iterations_per_s",
                "batch_size",
                "n_points",
                "peak_memory_mb",
                "device_name",
                "settings",
                "versions",
            )
            if k in run
        },
        "mask": read_mask_record(mask_file),
        "convergence": run_convergence(run_dir),
        "files": {
            "case_dir": str(case.path),
            "run_dir": str(run_dir),
            "mask": str(mask_file),
            "checkpoint": None if checkpoint is None else str(checkpoint),
        },
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    record["figures"] = (
        [str(p.relative_to(run_dir)) for p in write_run_figures(case, transform, mask, info, run_dir, label)]
        if figures
        else []
    )
    record["evaluation"] = {"device": str(dev), "wall_s": time.perf_counter() - start}
    record = _clean(record)
    write_json(run_dir / layout.METRICS_JSON, record)
    return record
