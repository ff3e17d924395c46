"""The ablation table and figure of one sweep (the config's ``sweeps``, expanded by rnr/methods/sweeps.py).

Input:  --runs-dir results/<dataset>/runs with the metrics.json of the sweep's base and of every configuration
        the sweep made (rnr evaluate); --spec, the sweep as JSON (what the workflow's plan passes:
        {"name", "base", "keys", "rows": [{"configuration", "values"}]}).
Output: --out results/<dataset>/ablation/<sweep>/: ablation.csv/.md/.tex/.html (one row per value, the base
        first: mean TRE with its 95 % interval over cases, exact TRE where known, folding, SDlogJ, time per
        case, the paired test against the base) and ablation.png/.pdf (TRE against the value, seed spread).

Example:
  rnr ablation --runs-dir results/phantom/runs --out results/phantom/ablation/grad \\
    --spec '{"name": "grad", "base": "rnr", "keys": ["alpha_grad"], "rows": [{"configuration":
    "rnr_alpha_grad_0", "values": {"alpha_grad": 0.0}}]}'
"""

from __future__ import annotations

import argparse
import json

HELP = "one sweep's ablation table (CSV, Markdown, LaTeX, HTML) and its figure"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs-dir", required=True, help="results/<dataset>/runs")
    parser.add_argument("--out", required=True, help="output folder, e.g. results/<dataset>/ablation/<sweep>")
    parser.add_argument("--spec", required=True, help="the sweep as JSON (rnr.methods.sweeps.Sweep.to_dict)")
    parser.add_argument(
        "--label", dest="labels", action="append", default=[], metavar="NAME=TEXT", help="display label"
    )


def run(args: argparse.Namespace) -> int:
    from ..io import InputError
    from ..methods.sweeps import sweep_from_dict
    from ..reporting.ablation import write_ablation
    from . import parse_labels

    try:
        sweep = sweep_from_dict(json.loads(args.spec))
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"--spec: expected a sweep as JSON with name, base, keys and rows; {exc}") from None
    paths = write_ablation(args.runs_dir, args.out, sweep, parse_labels(args.labels))
    print(f"wrote {', '.join(p.name for p in paths)} to {args.out}")
    return 0
