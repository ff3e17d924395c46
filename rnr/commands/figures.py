"""Draw the dataset-level figures (seaborn; PNG and PDF) from every run's metrics.json.

Input:  --runs-dir results/<dataset>/runs (as for rnr tables)
Output: --out results/<dataset>/figures:
  tre_distribution.png/.pdf           per-landmark TRE per case and configuration (boxes + every landmark)
  tre_mean_per_configuration.png/.pdf mean of case means per configuration, std over cases, dots = cases
  tre_before_after.png/.pdf           mean ± std TRE per case, initial (before) next to each configuration
  folding_runtime.png/.pdf            folding percentage and runtime per configuration (dots = cases)

Example:
  rnr figures --runs-dir results/phantom/runs --out results/phantom/figures
"""

from __future__ import annotations

import argparse

HELP = "seaborn figures of TRE, folding and runtime over all cases and configurations (PNG + PDF)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs-dir", required=True, help="results/<dataset>/runs")
    parser.add_argument("--out", required=True, help="output folder, e.g. results/<dataset>/figures")
    parser.add_argument(
        "--configurations",
        nargs="+",
        default=None,
        metavar="NAME",
        help="only these configurations, in this order (initial always first)",
    )


def run(args: argparse.Namespace) -> int:
    from ..plots import write_figures
    from ..results import load_metrics, per_landmark_frame, summary_frame

    records = load_metrics(args.runs_dir, args.configurations)
    paths = write_figures(
        summary_frame(records, args.configurations),
        per_landmark_frame(records, args.configurations),
        args.out,
        args.configurations,
    )
    print(f"wrote {len(paths)} figure files to {args.out}")
    return 0
