"""Write the T00 lung mask of a converted case (the points the registration samples lie inside it).

Input: a case folder written by `rnr convert` (T00.nii.gz in HU, case.json; mask_provided.nii.gz when the
DIR-Lab folder had Masks/). Output: a uint8 0/1 NIfTI on the T00 grid (same size, spacing, origin and
direction), by default CASE_DIR/mask_T00.nii.gz, written atomically.

Methods:
  auto       the provided mask when the case has one, else lungmask
  lungmask   lungmask's U-Net R231 (labels "right lung" and "left lung" merged into one mask). Its weights
             (unet_r231-d5d2fc3d.pth, ~120 MB) are read from --weights FILE, else from torch's hub cache
             ($TORCH_HOME/hub/checkpoints/, default ~/.cache/torch/hub/checkpoints/), else downloaded there
             from https://github.com/JoHof/lungmask/releases/download/v0.0/unet_r231-d5d2fc3d.pth.
             Offline compute nodes: download that file elsewhere and pass --weights FILE.
  provided   validate and copy the provided mask (must lie on the T00 grid)
  threshold  classical: HU < -400, minus the air around the body, the two largest components (the second
             only if >= 10 % of the largest), closing, holes filled per slice (no weights needed)

Every mask is checked before it is written: at least 80 % of its voxels below -500 HU in T00, at least
0.5 L, at least 90 % of it in its two largest connected components; otherwise the step fails naming the
figures (a mask upside down relative to T00 is named as such). The figures are written next to the mask
(CASE_DIR/mask_T00.json, or OUT with .json for --out OUT) and printed.

A provided mask keeps T00's voxel order when its direction matrix is T00's or the identity (raw DIR-Lab
order); another axis permutation or flip is reoriented (rnr convert does this and the log says so).

Example:
  rnr segment --case-dir results/dirlab/data/case1 --method lungmask --weights ~/unet_r231-d5d2fc3d.pth
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..data.case import describe_figures
from ..data.segment import METHODS, read_mask_record, segment_case

HELP = "T00 lung mask of a converted case (lungmask, provided, threshold)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--case-dir", required=True, type=Path, help="converted case folder (rnr convert)")
    parser.add_argument(
        "--method",
        choices=METHODS,
        default="auto",
        help="segmentation method (default: auto = provided mask if present, else lungmask)",
    )
    parser.add_argument(
        "--weights",
        type=Path,
        default=None,
        help="local lungmask R231 weights file (unet_r231-d5d2fc3d.pth); needed offline",
    )
    parser.add_argument(
        "--no-download",
        action="store_true",
        help="never try to download the lungmask weights (fail at once when not local)",
    )
    parser.add_argument("--out", type=Path, default=None, help="output mask (default: CASE_DIR/mask_T00.nii.gz)")


def run(args: argparse.Namespace) -> int:
    out, used = segment_case(
        args.case_dir, args.method, weights=args.weights, out=args.out, download=not args.no_download
    )
    record = read_mask_record(out) or {}
    if record.get("orientation"):
        print(f"rnr segment: provided mask orientation: {record['orientation']}")
    if record:
        print(f"rnr segment: {used} mask: {describe_figures(record)}")
    print(f"rnr segment: {used} mask -> {out}")
    return 0
