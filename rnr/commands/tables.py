"""Collect every run's metrics.json into the result tables of a dataset (results/README.md explains them).

Input:  --runs-dir results/<dataset>/runs, holding <configuration>/case<N>/seed<S>/metrics.json (rnr evaluate);
        every configuration must have every case, and all runs of a configuration the same settings.
Output: --out results/<dataset>/tables, every table of rnr/table_specs.py (results/README.md lists their
        columns, generated from the same specs):
  tre.csv              one row per case x configuration (initial included), seeds pooled: case, configuration,
                       tre_mean_mm, tre_std_mm, tre_x_mm, tre_y_mm, tre_z_mm, tre_snapped_mean_mm,
                       folding_fraction, runtime_s, device, then the spread over seeds, median, p95, max,
                       SDlogJ, convergence and mask figures, and the display label
  tre.md/.tex/.html    thesis table: cases as rows plus a mean row (95 % bootstrap interval over cases),
                       configurations as columns (initial first, headed by their labels), cells mean ± std
                       (ddof = 1) over the landmarks; markers of the paired Wilcoxon tests against --compare-to
                       (Holm); notes with the conventions and every setting that differs between configurations
  tre_snapped.*        the same for snapped TRE (prediction rounded to the nearest voxel)
  tre_exact.*          where the dataset carries its exact motion (the phantom): exact TRE, marked from the
                       paired tests on the exact per-landmark TRE, and the dense error
  folding.csv/.md/.html  folding, det J statistics, SDlogJ, convergence, runtime and device
  tre_landmarks.csv    tidy per-landmark TRE (one row per landmark x case x configuration x seed)
  tre_exact_landmarks.csv  the same for the exact TRE (header only without an exact motion)
  stats.csv/.html      the paired tests, per case and across cases, on tre_mm and (phantom) tre_exact_mm
  configurations.csv/.html  effective settings, seeds, devices and package versions of every configuration

Example:
  rnr tables --runs-dir results/phantom/runs --out results/phantom/tables --compare-to rnr
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
    parser.add_argument(
        "--compare-to",
        default=None,
        metavar="NAME",
        help="reference configuration of the paired tests (default: the first registered configuration)",
    )
    parser.add_argument(
        "--label",
        dest="labels",
        action="append",
        default=[],
        metavar="NAME=TEXT",
        help="display label of a configuration, shown in every table format (and the CSVs' label column), "
        "e.g. --label 'rnr_no_intermediate=RNR, T00-T50'",
    )


def run(args: argparse.Namespace) -> int:
    from ..io import InputError
    from ..tables import write_tables

    labels = {}
    for item in args.labels:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise InputError(f"--label expects NAME=TEXT, got {item!r}")
        labels[name] = text
    paths = write_tables(args.runs_dir, args.out, args.configurations, args.compare_to, labels)
    print(f"wrote {len(paths)} tables to {args.out}: {', '.join(p.name for p in paths)}")
    return 0
