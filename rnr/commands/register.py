"""Fit a registration (RNR by default) to one converted case and write its run folder.

Inputs: a case folder written by `rnr convert` (T00..T50 NIfTI in HU, landmarks, case.json) and a T00
lung mask on its grid (default CASE_DIR/mask_T00.nii.gz, written by `rnr segment`). Settings are the
defaults of the chosen method (RNR: 2500 iterations of 10,000 random mask points, 5 blocks of width 100,
Adam lr 1e-4, seed 3, intermediate phases with the "seed" pairing; config/README.md lists every method's
keys), overridden by a YAML/JSON file (--settings) and then by --set key=value pairs. An unknown key, or
one that belongs to another method, is an error listing the valid ones.

Outputs in RUN_DIR (each written atomically; the checkpoint last, and outputs of an earlier run there are
removed first, so an interrupted run never looks complete):
  checkpoint.pt              the fitted map (reload with rnr.methods.table.load_transform, on CPU or GPU)
  loss.csv                   one row per iteration: iteration, loss, dissimilarity, grad_penalty,
                             weight_penalty, dissimilarity_<term> per compared phase, elapsed_s
  landmarks_T00_warped.csv   the 300 T00 landmarks pushed through the map (x_vox.. 0-based, x_mm..)
  run.json                   case, configuration, method, settings, device, wall_s (fitting time),
                             iterations, iterations_per_s, batch_size, n_points, peak_memory_mb, versions

A progress bar (loss, iterations/s) goes to stderr; a summary with the TRE of the 300 T00/T50 landmarks
before and after (mean over points, mm) goes to stdout. `rnr evaluate` computes the full metrics.

Example:
  rnr register --case-dir results/phantom/data/case1 --out results/phantom/runs/rnr/case1 --name rnr
  rnr register --case-dir C --out R --set iterations=300 --set batch_size=mask/30 --set sampling=cycle
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from .. import layout
from ..config import Settings, parse_overrides
from ..data.case import load_case
from ..io import InputError
from ..methods.settings import settings_from_file, settings_from_mapping

HELP = "fit RNR (or a baseline) to a converted case: checkpoint, loss log, warped landmarks, run record"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--case-dir", required=True, type=Path, help="converted case folder (rnr convert)")
    parser.add_argument("--out", required=True, type=Path, help="run folder to write")
    parser.add_argument(
        "--mask", type=Path, default=None, help=f"T00 lung mask on the case grid (default: CASE_DIR/{layout.MASK_T00})"
    )
    parser.add_argument("--settings", type=Path, default=None, help="YAML/JSON mapping of settings to override")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one setting, e.g. --set iterations=300 (repeatable; applied last)",
    )
    parser.add_argument(
        "--name",
        default="default",
        help="configuration name recorded in run.json and the checkpoint (default: default)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def load_settings(settings_file: Path | None, overrides: list[str]) -> Settings:
    """Settings from an optional file and ``--set`` pairs (the pairs win)."""
    values = parse_overrides(overrides)
    if settings_file is not None:
        return settings_from_file(settings_file, values)
    return settings_from_mapping(values, where="--set")


def mean_tre_mm(points: np.ndarray, targets: np.ndarray, spacing_xyz: tuple[float, float, float]) -> float:
    """Mean over points of ||(points - targets) * spacing|| (both (P, 3) 0-based voxels) in mm."""
    diff = (np.asarray(points) - np.asarray(targets)) * np.asarray(spacing_xyz)
    return float(np.linalg.norm(diff, axis=1).mean())


def run(args: argparse.Namespace) -> int:
    # Imported here, not at the top: `rnr` builds every subcommand's parser, and this one would make every
    # other step (tables, figures, conversion, ...) load torch and the methods first.
    from ..fitting.fit import FitError
    from ..registration import register_case

    settings = load_settings(args.settings, args.overrides)
    case = load_case(args.case_dir)
    mask_path = args.mask if args.mask is not None else case.path / layout.MASK_T00
    if not Path(mask_path).is_file():
        raise InputError(
            f"{mask_path}: T00 lung mask not found; run `rnr segment --case-dir {case.path}` first or pass --mask"
        )
    mask = case.load_mask(mask_path)
    try:
        result = register_case(case, mask, settings, args.out, name=args.name, progress=not args.no_progress)
    except FitError as exc:
        # Same contract as every other expected failure (cli.main): one line on stderr, exit code 2.
        print(f"rnr register: error: {exc}", file=sys.stderr)
        return 2
    rec = result.record
    p00, p50 = case.landmarks("T00"), case.landmarks("T50")
    before = mean_tre_mm(p00, p50, case.spacing_xyz)
    after = mean_tre_mm(result.warped_landmarks, p50, case.spacing_xyz)
    rate = f" ({rec['iterations_per_s']:.2f} it/s)" if rec.get("iterations_per_s") else ""
    points = f" of {rec['batch_size']} of {rec['n_points']} mask points" if rec.get("batch_size") else ""
    loss = f", final loss {rec['final_loss']:.5f}" if rec.get("final_loss") is not None else ""
    print(
        f"rnr register: case {rec['case']}, configuration {rec['configuration']!r} ({rec['method']}) on "
        f"{rec['device']}: {rec['iterations']} iterations{points} in {rec['wall_s']:.1f} s{rate}, "
        f"peak memory {rec['peak_memory_mb']:.0f} MB{loss}"
    )
    print(f"rnr register: landmark TRE (mean, 300 T00/T50 points) {before:.2f} mm before -> {after:.2f} mm after")
    print(f"rnr register: wrote {args.out}")
    return 0
