"""Accuracy against budget over every run: the budget table and the figure of TRE against iterations and seconds.

Input:  --runs-dir results/<dataset>/runs: every run's metrics.json and, for loop methods run with
        ``curve_every``, its curve.csv (rnr register); a run without a curve is one point (final TRE, runtime).
Output: --out results/<dataset>/curves: budget.csv/.md/.tex/.html (TRE at 10/25/50 % of the iterations and at
        the end, time to come within 5 % of the final TRE), curve_points.csv (every point of every run) and
        curves.png/.pdf (mean over cases, spread shown).

Example:
  rnr curves --runs-dir results/phantom/runs --out results/phantom/curves
"""

from __future__ import annotations

import argparse

HELP = "accuracy against budget: the budget table and TRE against iterations and seconds"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs-dir", required=True, help="results/<dataset>/runs")
    parser.add_argument("--out", required=True, help="output folder, e.g. results/<dataset>/curves")
    parser.add_argument(
        "--configurations", nargs="+", default=None, metavar="NAME", help="only these configurations, in this order"
    )
    parser.add_argument(
        "--label", dest="labels", action="append", default=[], metavar="NAME=TEXT", help="display label"
    )


def run(args: argparse.Namespace) -> int:
    from ..reporting.ablation import write_budget
    from . import parse_labels

    paths = write_budget(args.runs_dir, args.out, args.configurations, parse_labels(args.labels))
    print(f"wrote {', '.join(p.name for p in paths)} to {args.out}")
    return 0
