"""Draw the dataset-level figures (PNG and PDF, sized for a 6.3 in text width) from every run's metrics.json.

Input:  --runs-dir results/<dataset>/runs (as for rnr tables); each run's loss.csv, where there is one
Output: --out results/<dataset>/figures (rnr.reporting.plots.QUESTIONS states the question each answers):
  tre_distribution.png/.pdf           per-landmark TRE, one facet per case, one row per configuration
  tre_mean_per_configuration.png/.pdf mean of case means per configuration, std over cases, dots = cases
  tre_before_after.png/.pdf           mean ± std TRE per case before (initial) and after, one facet per configuration
  folding_runtime.png/.pdf            folding percentage (left out when nothing folds) and runtime per configuration
  loss_curves.png/.pdf                loss per iteration, one facet per configuration, cases as lines, not-converged
                                      runs dashed (only when at least one run has a loss.csv)
  paired_differences.png/.pdf         per-landmark TRE differences against --compare-to, per case, median marked
                                      (with two or more registered configurations)
  paired_differences_exact.png/.pdf   the same for the TRE on the exact landmark positions (datasets that carry
                                      their exact motion: the phantom)
  tre_seed_spread.png/.pdf            mean TRE per configuration with the spread over seeds (with several seeds)

Every figure names the configurations by their display labels (--label NAME=TEXT, as for rnr tables).

Example:
  rnr figures --runs-dir results/phantom/runs --out results/phantom/figures [--page landscape]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

HELP = "figures of TRE, folding, runtime and convergence over all cases and configurations (PNG + PDF)"


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
    parser.add_argument(
        "--page",
        choices=("text", "landscape"),
        default="text",
        help="fit the figures to the text width of a page (6.3 in, default) or to a landscape A4 page (9.7 in)",
    )
    parser.add_argument(
        "--compare-to",
        default=None,
        metavar="NAME",
        help="reference configuration of the paired-difference figure (default: the first registered one)",
    )
    from .tables import add_label_argument

    add_label_argument(parser, "shown in every figure (as in rnr tables)")


def load_losses(records: list[dict[str, Any]]) -> dict[tuple[str, int], Any]:
    """{(configuration, case): loss log} for every run whose folder (next to its metrics.json) has a loss.csv."""
    from ..io import read_csv
    from ..layout import LOSS_CSV

    losses = {}
    for r in records:
        path = Path(r["_path"]).parent / LOSS_CSV
        key = (str(r["configuration"]), int(r["case"]))
        if path.is_file() and key not in losses:  # records come sorted by seed: the first seed's log
            losses[key] = read_csv(path, ["loss"])
    return losses


def relabel(frame: Any, labels: dict[str, str], columns: tuple[str, ...] = ("configuration",)) -> Any:
    """``frame`` with each configuration name in ``columns`` replaced by its display label (others kept): the
    figures draw whatever names the frames hold, so they show the labels everywhere."""
    return frame.assign(**{c: frame[c].map(lambda v: labels.get(v, v)) for c in columns if c in frame.columns})


def run(args: argparse.Namespace) -> int:
    from ..reporting.plots import write_figures
    from ..reporting.results import configuration_order, load_metrics, per_landmark_frame, summary_frame
    from ..reporting.stat_plots import paired_differences, tre_seed_spread
    from ..reporting.tables import collect
    from . import parse_labels

    labels = parse_labels(args.labels)
    records = load_metrics(args.runs_dir, args.configurations)
    summary = summary_frame(records, args.configurations)
    names = configuration_order(summary["configuration"].tolist(), args.configurations)
    order = [labels.get(c, c) for c in names]
    landmarks = relabel(per_landmark_frame(records, args.configurations), labels)
    losses = {(labels.get(c, c), n): log for (c, n), log in load_losses(records).items()}
    paths = write_figures(relabel(summary, labels), landmarks, args.out, order, losses=losses, page=args.page)
    data = collect(args.runs_dir, args.configurations, args.compare_to)
    if data.tests is not None:
        tests = relabel(data.tests, labels, ("configuration", "reference"))
        reference = labels.get(data.reference, data.reference)
        paths += paired_differences(landmarks, reference, Path(args.out), order, tests)
        if not data.exact_landmarks.empty:
            paths += paired_differences(
                relabel(data.exact_landmarks, labels),
                reference,
                Path(args.out),
                order,
                tests,
                value="tre_exact_mm",
                name="paired_differences_exact",
            )
    if landmarks.loc[landmarks["configuration"] != "initial", "seed"].nunique() > 1:
        paths += tre_seed_spread(landmarks, Path(args.out), order)
    print(f"wrote {len(paths)} figure files to {args.out}")
    return 0
