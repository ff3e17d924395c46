"""Score one registered case: TRE, folding and slice figures of a fitted map (or of the identity).

Inputs:
  --case-dir C   a converted case folder (rnr convert): T00/T50 volumes, landmarks, Sampled4D if present
  --run-dir R    the run folder of 'rnr register' (R/checkpoint.pt, R/run.json, R/loss.csv)
  --mask PATH    T00 lung mask for the folding check (default C/mask_T00.nii.gz)
  --identity     evaluate the identity map instead (configuration 'initial': no registration, no checkpoint)

Outputs:
  R/metrics.json  TRE in mm of the 300 T00 landmarks mapped to T50 (continuous, snapped to voxels and the
                  reference code's 'legacy' handling; mean, std with ddof = 1, per axis, per landmark),
                  TRE of every intermediate map on the Sampled4D landmarks when present, folding
                  (fraction of T00-mask voxels with det J <= 0, det J statistics, per step), runtime and
                  device of the registration (from R/run.json).
  R/figures/      slices_<fixed>_<moving>.png (coronal and axial: fixed, moving, difference, warped,
                  difference after), detj.png, loss.png (when R/loss.csv exists).

Conventions: 0-based voxel indices (x, y, z); mm = index * spacing; std with ddof = 1.

Example:
  rnr evaluate --case-dir results/phantom/data/case1 --run-dir results/phantom/runs/rnr/case1
  rnr evaluate --case-dir results/phantom/data/case1 --run-dir results/phantom/runs/initial/case1 --identity
"""

from __future__ import annotations

import argparse

HELP = "TRE, folding and slice figures of one registered case -> RUN_DIR/metrics.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--case-dir", required=True, help="converted case folder (rnr convert)")
    parser.add_argument("--run-dir", required=True, help="run folder (rnr register); metrics.json is written here")
    parser.add_argument("--mask", default=None, help="T00 lung mask for folding (default CASE_DIR/mask_T00.nii.gz)")
    parser.add_argument(
        "--identity",
        action="store_true",
        help="evaluate the identity map (configuration 'initial'); no checkpoint needed",
    )
    parser.add_argument(
        "--device",
        default="auto",
        choices=("auto", "cpu", "cuda"),
        help="where to evaluate the map (default: CUDA when available)",
    )
    parser.add_argument("--no-figures", action="store_true", help="write metrics.json only")
    parser.add_argument(
        "--label",
        default=None,
        metavar="TEXT",
        help="the configuration's display label, named in the figures' titles (default: the configuration's name)",
    )
    parser.add_argument(
        "--no-step-folding",
        action="store_true",
        help="skip the folding check of the intermediate maps phi_1..phi_N-1 (saves time on a CPU)",
    )


def run(args: argparse.Namespace) -> int:
    from ..evaluation.evaluate import evaluate_run

    record = evaluate_run(
        args.case_dir,
        args.run_dir,
        mask_path=args.mask,
        identity=args.identity,
        device=args.device,
        figures=not args.no_figures,
        step_folding=not args.no_step_folding,
        label=args.label,
    )
    tre, fold = record["tre"], record["folding"]
    print(
        f"case {record['case']} [{record['configuration']}]: "
        f"TRE {tre['mean_mm']:.2f} ± {tre['std_mm']:.2f} mm "
        f"(snapped {tre['snapped_mean_mm']:.2f}), folding {100 * fold['fraction']:.4f} % of "
        f"{fold['n_points']} mask voxels -> {args.run_dir}/metrics.json"
    )
    return 0
