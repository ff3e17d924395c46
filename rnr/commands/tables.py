"""Collect every run's metrics.json into the result tables of a dataset.

Input:  --runs-dir results/<dataset>/runs, holding <configuration>/case<N>/metrics.json (rnr evaluate); every
        configuration must have every case (missing files are listed in the error).
Output: --out results/<dataset>/tables:
  tre.csv            one row per case x configuration (initial included): case, configuration, tre_mean_mm,
                     tre_std_mm, tre_x_mm, tre_y_mm, tre_z_mm, tre_snapped_mean_mm, folding_fraction,
                     runtime_s, device, then further columns (per-axis std, snapped std, legacy TRE, det J)
  tre.md, tre.tex    thesis-style continuous TRE table: cases as rows plus a mean row (mean of case means),
                     configurations as columns (initial first), cells mean ± std (ddof = 1) over the
                     landmarks; bold = best registered configuration per row
  tre_snapped.md/.tex  the same for snapped TRE (prediction rounded to the nearest voxel)
  folding.csv/.md    folding percentage, min det J, runtime and device per case x configuration
  tre_landmarks.csv  tidy per-landmark TRE (one row per landmark x case x configuration)

Example:
  rnr tables --runs-dir results/phantom/runs --out results/phantom/tables
"""

from __future__ import annotations

import argparse

HELP = "all metrics.json of a dataset -> tre.csv/.md/.tex, snapped and folding tables, tidy landmarks CSV"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs-dir", required=True, help="results/<dataset>/runs")
    parser.add_argument("--out", required=True, help="output folder, e.g. results/<dataset>/tables")
    parser.add_argument(
        "--configurations",
        nargs="+",
        default=None,
        metavar="NAME",
        help="only these configurations, in this column order (initial always first)",
    )


def run(args: argparse.Namespace) -> int:
    from ..tables import write_tables

    paths = write_tables(args.runs_dir, args.out, args.configurations)
    print(f"wrote {len(paths)} tables to {args.out}: {', '.join(p.name for p in paths)}")
    return 0
