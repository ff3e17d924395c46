"""Collect every run's metrics.json into the result tables of a dataset (results/README.md explains them).

Input:  --runs-dir results/<dataset>/runs, holding <configuration>/case<N>/seed<S>/metrics.json (rnr evaluate);
        every configuration must have every case, and all runs of a configuration the same settings.
Output: --out results/<dataset>/tables: every table of rnr/reporting/table_specs.py, e.g. tre.csv (one row per case x
        configuration, the contract columns first), tre.md/.tex/.html (the thesis table: cases as rows plus a
        mean row with a 95 % bootstrap interval over cases, configurations as columns headed by their labels,
        markers of the paired tests against --compare-to), tre_exact.* and tre_exact_landmarks.csv (datasets
        that carry their exact motion: the phantom), stats.csv (the paired tests); results/README.md lists every
        file and column (generated from the same specs).

Example:
  rnr tables --runs-dir results/phantom/runs --out results/phantom/tables --compare-to rnr
"""

from __future__ import annotations

import argparse
from pathlib import Path

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
        "--dataset",
        default=None,
        metavar="NAME",
        help="the dataset the runs belong to (a name of rnr.data.DATASETS): named in every table's title and in "
        "the LaTeX \\label keys (tab:NAME-tre), so tables of two datasets in one thesis stay apart (default: the "
        "runs folder's parent, results/<dataset>/runs, when that is a dataset's name)",
    )
    add_label_argument(parser, "shown in every table format (and the CSVs' label column)")


def add_label_argument(parser: argparse.ArgumentParser, where: str) -> None:
    """``--label NAME=TEXT`` (repeatable), of rnr tables and rnr figures."""
    parser.add_argument(
        "--label",
        dest="labels",
        action="append",
        default=[],
        metavar="NAME=TEXT",
        help=f"display label of a configuration, {where}, e.g. --label 'rnr_no_intermediate=RNR, T00-T50'",
    )


def dataset_name(given: str | None, runs_dir: str) -> str:
    """The dataset of the tables: ``--dataset`` (a name of rnr.data.DATASETS, else an InputError), or the runs
    folder's parent (results/<dataset>/runs) when that names a dataset, or "" (none named)."""
    from ..data import DATASETS
    from ..io import InputError

    if given is not None and given not in DATASETS:
        raise InputError(f"--dataset: expected one of {', '.join(DATASETS)}, got {given!r}")
    name = given or Path(runs_dir).resolve().parent.name
    return name if name in DATASETS else ""


def run(args: argparse.Namespace) -> int:
    from ..reporting.tables import write_tables
    from . import parse_labels

    labels = parse_labels(args.labels)
    paths = write_tables(
        args.runs_dir, args.out, args.configurations, args.compare_to, labels, dataset_name(args.dataset, args.runs_dir)
    )
    print(f"wrote {len(paths)} tables to {args.out}: {', '.join(p.name for p in paths)}")
    return 0
