"""The ``rnr`` command: one subcommand per pipeline step, each usable on its own outside Snakemake.

Run ``rnr --help`` for the list and ``rnr SUBCOMMAND --help`` for each step's inputs and outputs.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .config import SettingsError
from .io import InputError

# Order = pipeline order, as shown by `rnr --help`.
SUBCOMMANDS = (
    "phantom",
    "convert",
    "segment",
    "register",
    "evaluate",
    "export",
    "tables",
    "figures",
    "ablation",
    "curves",
    "bench",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rnr",
        description="RNR lung 4DCT registration benchmark: each step of the Snakemake pipeline as a command.",
    )
    sub = parser.add_subparsers(dest="command", metavar="SUBCOMMAND", required=True)
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"rnr.commands.{name}")
        p = sub.add_parser(
            name, help=module.HELP, description=module.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except (InputError, SettingsError) as exc:
        # Expected failures (bad data, bad settings): one clear line, no traceback.
        print(f"rnr {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
