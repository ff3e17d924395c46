"""The one optimisation loop: fit a registration method to a converted case and write the run folder.

Data (method.md, "Which image moves"): the points are the voxel centres of the T00 lung mask in normalised
coordinates; the warped image is T50 and the fixed images are T00 and, with intermediate data, T10..T40.
Each *compared term* is (step n, moving phase, fixed phase):

* ``seed`` pairing (default): T50 sampled at phi_n(x) vs phase T(50-10n) at x, n = 1..5;
* ``trajectory`` pairing: phase T(10n) sampled at phi_n(x) vs T00 at x, n = 1..5;
* without intermediate data (or ``intermediate: false``): only T50 at phi_N(x) vs T00 at x (all N blocks
  still run and are penalised).

With N = 5k blocks, phase interval i uses step i*k. Fixed intensities are exact voxel values (the points are
voxel centres), gathered once; moving images are sampled trilinearly with border clamping.

Structure, so that every method shares sampling, NCC, the loop, device handling, logging and outputs:

* :class:`Objective`: a method's trainable parameters and its loss on a batch of mask-point indices,
  returning ``(loss, terms)``; and the fitted :class:`~rnr.transform.Transform` at the end.
  :class:`RNRObjective` is RNR's (one jet pass, rnr/jet.py).
* :func:`optimise`: the loop (Adam, sampler, progress bar, per-iteration log kept on the device, a
  non-finite loss stops with :class:`FitError`).
* :func:`register_method`: a method name -> runner (``FitContext -> MethodOutcome``). Loop-based methods
  call :func:`fit_objective`; others (demons) build their Transform any way they like.
  ``register`` imports ``rnr.idir`` / ``rnr.demons`` on demand; they register their runners on import.
* :func:`register`: dispatch on ``settings.method``, then write checkpoint.pt, loss.csv,
  landmarks_T00_warped.csv and run.json (layout.py names) atomically, the checkpoint last.
"""

from __future__ import annotations

import importlib
import math
import platform
import resource
import shutil
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from . import coords, layout, losses
from .case import ConvertedCase
from .config import Settings, SettingsError
from .io import write_csv, write_json
from .network import ResNetMap, ResNetTransform
from .sampling import PointSampler, sample_volumes
from .transform import Transform, package_versions

#: Phase intervals covered by the intermediate phases T00 -> T10 -> ... -> T50.
N_INTERVALS = 5
#: Modules that register further methods when imported (see :func:`register_method`).
METHOD_MODULES = {"idir": "rnr.idir", "demons": "rnr.demons"}


class FitError(ValueError):
    """A fit that cannot go on (non-finite loss, unavailable method). The message names case and run."""


# ------------------------------------------------------------------------------------------------- data
def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without CUDA is a SettingsError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SettingsError("setting device='cuda' but CUDA is not available here; use device=auto or cpu")
    return torch.device(name)


@dataclass(frozen=True)
class Term:
    """One compared term: T_moving sampled at phi_step(x) vs T_fixed at x."""

    step: int
    moving: str
    fixed: str

    @property
    def label(self) -> str:
        return f"{self.moving}_phi{self.step}_vs_{self.fixed}"


def compared_terms(settings: Settings, has_intermediate: bool, n_steps: int | None = None) -> tuple[Term, ...]:
    """The terms of the dissimilarity for these settings (module docstring); ``n_steps`` defaults to
    ``settings.n_blocks``."""
    n = settings.n_blocks if n_steps is None else n_steps
    if not (settings.intermediate and has_intermediate):
        return (Term(n, "T50", "T00"),)
    if n % N_INTERVALS:
        raise SettingsError(
            f"intermediate phases need n_blocks to be a multiple of {N_INTERVALS} (one or "
            f"more blocks per phase interval T00->T10->...->T50), got n_blocks={n}; "
            "set intermediate=false or change n_blocks"
        )
    k = n // N_INTERVALS
    phases = layout.PHASES
    if settings.pairing == "seed":
        return tuple(Term(i * k, "T50", phases[N_INTERVALS - i]) for i in range(1, N_INTERVALS + 1))
    return tuple(Term(i * k, phases[i], "T00") for i in range(1, N_INTERVALS + 1))


@dataclass
class FitData:
    """Everything the loop samples, on the fitting device.

    Attributes:
        points: (M, 3) normalised (x, y, z) centres of the T00-mask voxels, float32.
        fixed: (S, M) fixed intensities (HU) at the points, one row per compared term.
        moving: (K, nz, ny, nx) moving volumes (HU): K = 1 (all terms warp T50) or K = S (one per term).
        terms: the S compared terms.
        size_xyz, spacing_xyz: the T00 grid.
    """

    points: torch.Tensor
    fixed: torch.Tensor
    moving: torch.Tensor
    terms: tuple[Term, ...]
    size_xyz: tuple[int, int, int]
    spacing_xyz: tuple[float, float, float]

    @property
    def n_points(self) -> int:
        return int(self.points.shape[0])

    @property
    def steps(self) -> tuple[int, ...]:
        return tuple(t.step for t in self.terms)

    @property
    def intermediate_used(self) -> bool:
        return len(self.terms) > 1


def prepare_data(
    case: ConvertedCase, mask: np.ndarray, settings: Settings, device: torch.device, n_steps: int | None = None
) -> FitData:
    """Load the images this fit compares and gather the mask points (module docstring).

    Args:
        mask: (nz, ny, nx) bool T00 lung mask on the case grid.
        n_steps: steps of the map (default ``settings.n_blocks``; 1 for single-step methods).
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != case.shape_zyx:
        raise ValueError(f"mask shape {mask.shape} is not the case grid (z, y, x) = {case.shape_zyx}")
    if not mask.any():
        raise ValueError("the mask is empty: registration needs T00 lung points")
    terms = compared_terms(settings, case.has_intermediate, n_steps)
    points = coords.voxel_to_normalised(coords.mask_points(mask), case.size_xyz)
    fixed_rows: dict[str, np.ndarray] = {}
    for phase in dict.fromkeys(t.fixed for t in terms):
        fixed_rows[phase] = case.image(phase)[mask]  # C order = the order of coords.mask_points
    fixed = torch.as_tensor(np.stack([fixed_rows[t.fixed] for t in terms]), dtype=torch.float32, device=device)
    moving_phases = list(dict.fromkeys(t.moving for t in terms))
    if len(moving_phases) not in (1, len(terms)):
        raise AssertionError("moving phases must be one for all terms or one per term")
    moving = torch.empty((len(moving_phases), *case.shape_zyx), dtype=torch.float32, device=device)
    for i, phase in enumerate(moving_phases):  # one volume on the host at a time
        moving[i] = torch.from_numpy(case.image(phase))
    return FitData(
        points=torch.as_tensor(points, dtype=torch.float32, device=device),
        fixed=fixed,
        moving=moving,
        terms=terms,
        size_xyz=case.size_xyz,
        spacing_xyz=case.spacing_xyz,
    )


# -------------------------------------------------------------------------------------------- objective
class Objective(ABC):
    """A method's model and loss on a batch of mask points (what :func:`optimise` needs).

    ``term_names`` name the logged terms, in the order of the ``terms`` tensor ``loss`` returns.
    ``main_threads``: when set, :func:`optimise` runs the loop with this many torch (OpenMP) threads on the
    calling thread and restores the previous setting afterwards (an objective that parallelises by itself).
    """

    term_names: tuple[str, ...] = ()
    main_threads: int | None = None

    @abstractmethod
    def parameters(self) -> list[torch.Tensor]:
        """The tensors Adam optimises (on the fitting device)."""

    @abstractmethod
    def loss(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss on the batch of mask points ``idx`` (B,) int64: (scalar with graph, terms (T,) detached)."""

    @abstractmethod
    def transform(self) -> Transform:
        """The fitted map."""


class RNRObjective(Objective):
    """RNR's energy (method.md): mean_n D_n + alpha_grad * P + alpha_W * S, via one jet pass.

    Threads on the CPU: the jet shares its chunks of points out to ``torch.get_num_threads()`` (at
    construction) single-threaded workers, and everything else in the loop (sampling, NCC, Adam on 54k
    parameters: small kernels that gain nothing from several threads) runs single-threaded. This avoids an
    OpenMP barrier per small kernel, which on a busy shared machine costs a scheduler time slice each.
    """

    def __init__(self, data: FitData, settings: Settings, dtype: torch.dtype = torch.float32):
        self.data = data
        self.settings = settings
        device = data.points.device
        self.workers = torch.get_num_threads() if device.type == "cpu" else 1
        self.main_threads = 1 if device.type == "cpu" else None
        self.model = ResNetMap(
            settings.n_blocks, settings.width, settings.shared_weights, settings.seed, dtype=dtype
        ).to(device)
        self._steps = torch.as_tensor([s - 1 for s in data.steps], device=device)
        self.term_names = (
            "dissimilarity",
            "grad_penalty",
            "weight_penalty",
            *(f"dissimilarity_{t.label}" for t in data.terms),
        )

    def parameters(self) -> list[torch.Tensor]:
        return list(self.model.parameters())

    def phis_and_penalty(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(phis (N, B, 3) with phis[n-1] = phi_n(x), P ()); P is NaN (not computed) when alpha_grad = 0."""
        if self.settings.alpha_grad > 0:
            phis, sq = self.model.jet(x, self.workers)
            return phis, losses.gradient_penalty_from_sums(sq, x.shape[0])
        return torch.stack(self.model.trajectory(x)[0][1:]), x.new_full((), math.nan)

    def loss(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.data.points[idx].to(self.model.blocks[0].W1.dtype)
        phis, penalty = self.phis_and_penalty(x)
        return self.combine(idx, phis, penalty)

    def combine(
        self, idx: torch.Tensor, phis: torch.Tensor, penalty: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The energy from the warped points phis (N, B, 3) and the gradient penalty P."""
        warped = sample_volumes(self.data.moving, phis[self._steps]).to(phis.dtype)  # (S, B)
        fixed = self.data.fixed[:, idx].to(phis.dtype)
        d_terms = losses.dissimilarity(warped, fixed)  # (S,)
        d = d_terms.mean()
        s = losses.weight_penalty(self.model.weight_matrices())
        total = d + self.settings.alpha_weight * s
        if self.settings.alpha_grad > 0:
            total = total + self.settings.alpha_grad * penalty
        terms = torch.cat([torch.stack([d, penalty, s]), d_terms]).detach()
        return total, terms

    def transform(self) -> Transform:
        return ResNetTransform(self.data.size_xyz, self.data.spacing_xyz, self.model)


# --------------------------------------------------------------------------------------------- the loop
@dataclass
class FitLog:
    """Per-iteration log (columns iteration, loss, <term names>, elapsed_s) and the loop's wall time."""

    frame: pd.DataFrame
    wall_s: float
    iterations: int


def optimise(
    objective: Objective,
    sampler: PointSampler,
    iterations: int,
    lr: float,
    *,
    progress: bool = True,
    label: str = "fit",
) -> FitLog:
    """Run Adam on ``objective`` for ``iterations`` batches from ``sampler``.

    The loss and terms of every iteration are written into a log tensor on the device (no host copy per
    iteration on a GPU; finiteness is checked every iteration on the CPU, every 50 on a GPU). The loss of
    row ``iteration = k`` (1-based) is evaluated before the k-th Adam step.

    Raises:
        FitError: the loss became NaN or infinite (message: ``label``, iteration, hint).
    """
    params = objective.parameters()
    device = params[0].device
    opt = torch.optim.Adam(params, lr=lr)
    names = ("loss", *objective.term_names)
    log = torch.empty((iterations, len(names)), dtype=torch.float64, device=device)
    elapsed = np.zeros(iterations)
    check_every = 1 if device.type == "cpu" else 50
    tty = sys.stderr.isatty()
    bar = tqdm(
        total=iterations,
        disable=not progress,
        desc=label,
        unit="it",
        dynamic_ncols=True,
        mininterval=0.5 if tty else 30.0,
        file=sys.stderr,
    )
    checked = 0
    threads_before = torch.get_num_threads()
    if objective.main_threads is not None:
        torch.set_num_threads(objective.main_threads)
    start = time.perf_counter()
    try:
        for it in range(iterations):
            idx = sampler.next()
            loss, terms = objective.loss(idx)
            log[it, 0] = loss.detach()
            log[it, 1:] = terms
            if (it + 1) % check_every == 0 or it + 1 == iterations:
                recent = log[checked : it + 1, 0]
                if not bool(torch.isfinite(recent).all()):
                    bad = checked + int(torch.nonzero(~torch.isfinite(recent))[0, 0])
                    raise FitError(
                        f"{label}: the loss is not finite ({float(log[bad, 0])}) at iteration "
                        f"{bad + 1} of {iterations}; nothing was written. Try a smaller lr, or "
                        "check the images and the mask."
                    )
                checked = it + 1
                if progress:
                    bar.set_postfix(loss=f"{float(log[it, 0]):.5f}", refresh=False)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            elapsed[it] = time.perf_counter() - start
            bar.update(1)
    finally:
        bar.close()
        torch.set_num_threads(threads_before)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    wall = time.perf_counter() - start
    values = log.cpu().numpy()
    frame = pd.DataFrame(values, columns=list(names))
    frame.insert(0, "iteration", np.arange(1, iterations + 1))
    frame["elapsed_s"] = elapsed
    return FitLog(frame=frame, wall_s=wall, iterations=iterations)


# ------------------------------------------------------------------------------------- methods registry
@dataclass
class FitContext:
    """What a method runner gets: the case, mask (nz, ny, nx) bool, settings, device and run label."""

    case: ConvertedCase
    mask: np.ndarray
    settings: Settings
    device: torch.device
    label: str
    progress: bool = True
    _data: FitData | None = field(default=None, repr=False)

    def data(self, n_steps: int | None = None) -> FitData:
        """The sampled data on the device (built once; ``n_steps`` as in :func:`prepare_data`)."""
        if self._data is None:
            self._data = prepare_data(self.case, self.mask, self.settings, self.device, n_steps)
        return self._data


@dataclass
class MethodOutcome:
    """What a method runner returns.

    Attributes:
        transform: the fitted map (T00 -> T50).
        log: per-iteration (or per-step) log, written to loss.csv; columns ``iteration``, ``loss``, ...,
            ``elapsed_s``.
        wall_s: seconds spent fitting (data loading and output excluded).
        iterations: iterations (or optimiser steps) done.
        batch_size: points per iteration (None when not point-based).
        n_points: T00-mask voxels used.
        extra: anything else for run.json (e.g. the compared terms).
        device: where the method actually ran when that is not the settings' device (demons: the CPU).
    """

    transform: Transform
    log: pd.DataFrame
    wall_s: float
    iterations: int
    batch_size: int | None
    n_points: int
    extra: dict[str, Any] = field(default_factory=dict)
    device: torch.device | None = None


MethodRunner = Callable[[FitContext], MethodOutcome]
_RUNNERS: dict[str, MethodRunner] = {}


def register_method(name: str) -> Callable[[MethodRunner], MethodRunner]:
    """Decorator: make ``runner`` the fitting procedure of ``settings.method == name``."""

    def deco(runner: MethodRunner) -> MethodRunner:
        _RUNNERS[name] = runner
        return runner

    return deco


def method_runner(method: str) -> MethodRunner:
    """The runner of ``method``, importing its module first when needed (:data:`METHOD_MODULES`)."""
    if method not in _RUNNERS and method in METHOD_MODULES:
        try:
            importlib.import_module(METHOD_MODULES[method])
        except ModuleNotFoundError as exc:
            if exc.name != METHOD_MODULES[method]:
                raise
    if method not in _RUNNERS:
        raise FitError(
            f"method {method!r} is not available for fitting yet (no runner registered; known: "
            f"{', '.join(sorted(_RUNNERS))})"
        )
    return _RUNNERS[method]


def make_sampler(settings: Settings, n_points: int, device: torch.device) -> PointSampler:
    """The batch sampler of these settings (resolved batch size, its own generator seeded with ``seed``)."""
    batch = settings.resolve_batch_size(n_points)
    return PointSampler(n_points, batch, settings.sampling, settings.seed, device)


def fit_objective(ctx: FitContext, objective: Objective) -> MethodOutcome:
    """Run :func:`optimise` on a loop-based method's objective with the context's settings."""
    data = ctx.data()
    sampler = make_sampler(ctx.settings, data.n_points, ctx.device)
    fit = optimise(objective, sampler, ctx.settings.iterations, ctx.settings.lr, progress=ctx.progress, label=ctx.label)
    return MethodOutcome(
        transform=objective.transform(),
        log=fit.frame,
        wall_s=fit.wall_s,
        iterations=fit.iterations,
        batch_size=sampler.batch_size,
        n_points=data.n_points,
        extra={"compared_terms": [t.label for t in data.terms], "intermediate_used": data.intermediate_used},
    )


@register_method("rnr")
def _run_rnr(ctx: FitContext) -> MethodOutcome:
    return fit_objective(ctx, RNRObjective(ctx.data(), ctx.settings))


# ------------------------------------------------------------------------------------------- register
@dataclass
class FitResult:
    """The outcome of :func:`register`: the map, the log, the run record and the warped T00 landmarks
    (300, 3) in 0-based voxels."""

    transform: Transform
    log: pd.DataFrame
    record: dict[str, Any]
    warped_landmarks: np.ndarray
    out_dir: Path | None


OUTPUT_FILES = (layout.CHECKPOINT, layout.LOSS_CSV, layout.WARPED_LANDMARKS, layout.RUN_JSON)


def peak_memory_mb(device: torch.device) -> float:
    """CUDA: max memory allocated by torch on ``device``; CPU: the process's peak resident set (MB)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"


def register(
    case: ConvertedCase,
    mask: np.ndarray,
    settings: Settings,
    out_dir: Path | None = None,
    name: str = "rnr",
    progress: bool = True,
) -> FitResult:
    """Fit ``settings.method`` to ``case`` on the T00 ``mask`` (nz, ny, nx) and, with ``out_dir``, write
    checkpoint.pt, loss.csv, landmarks_T00_warped.csv and run.json there (layout.py).

    Outputs of an earlier run in ``out_dir`` are removed first, and the checkpoint is written last, so an
    interrupted or failed run leaves no complete-looking run folder. ``name`` is the configuration name.

    Raises:
        FitError: non-finite loss or unknown method (nothing written); SettingsError: impossible settings.
    """
    total_start = time.perf_counter()
    runner = method_runner(settings.method)
    device = resolve_device(settings.device)
    if out_dir is not None:
        out_dir = Path(out_dir)
        for file in OUTPUT_FILES:
            (out_dir / file).unlink(missing_ok=True)
        # An evaluation of the earlier fit describes a map that no longer exists: drop it too, so a failed
        # or killed re-registration never leaves stale metrics for `rnr tables` to publish.
        (out_dir / layout.METRICS_JSON).unlink(missing_ok=True)
        shutil.rmtree(out_dir / layout.FIGURES_DIR, ignore_errors=True)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    label = f"case {case.case} / {name} ({settings.method})"
    outcome = runner(FitContext(case, np.asarray(mask, dtype=bool), settings, device, label, progress))
    device = outcome.device or device
    transform = outcome.transform
    warped = transform.apply_voxels(case.landmarks("T00"))
    record: dict[str, Any] = {
        "case": case.case,
        "configuration": name,
        "method": settings.method,
        "settings": settings.to_dict(),
        "device": str(device),
        "device_name": device_description(device),
        "wall_s": outcome.wall_s,
        "iterations": outcome.iterations,
        "iterations_per_s": outcome.iterations / outcome.wall_s if outcome.wall_s > 0 else None,
        "batch_size": outcome.batch_size,
        "n_points": outcome.n_points,
        "peak_memory_mb": peak_memory_mb(device),
        "final_loss": float(outcome.log["loss"].iloc[-1]) if len(outcome.log) else None,
        **outcome.extra,
        "size_xyz": list(case.size_xyz),
        "spacing_xyz": list(case.spacing_xyz),
        "versions": package_versions(),
    }
    if out_dir is not None:
        write_csv(out_dir / layout.LOSS_CSV, outcome.log)
        write_csv(out_dir / layout.WARPED_LANDMARKS, landmark_frame(warped, case.spacing_xyz))
        record["total_s"] = time.perf_counter() - total_start
        write_json(out_dir / layout.RUN_JSON, record)
        transform.save(
            out_dir / layout.CHECKPOINT,
            settings=settings.to_dict(),
            seed=settings.seed,
            case=case.case,
            configuration=name,
            method=settings.method,
            geometry={"size_xyz": list(case.size_xyz), "spacing_xyz": list(case.spacing_xyz)},
            case_dir=str(case.path),
            device=str(device),
            **outcome.extra,
        )
    else:
        record["total_s"] = time.perf_counter() - total_start
    return FitResult(transform=transform, log=outcome.log, record=record, warped_landmarks=warped, out_dir=out_dir)


def landmark_frame(points_vox: np.ndarray, spacing_xyz: tuple[float, float, float]) -> pd.DataFrame:
    """(P, 3) 0-based voxel points -> table with layout.LANDMARK_COLUMNS (mm = index0 * spacing)."""
    mm = coords.voxel_to_mm(np.asarray(points_vox, dtype=np.float64), spacing_xyz)
    return pd.DataFrame(np.concatenate([points_vox, mm], axis=1), columns=list(layout.LANDMARK_COLUMNS))
