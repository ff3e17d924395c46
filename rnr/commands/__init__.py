"""One module per ``rnr`` subcommand. Each defines ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int``; :mod:`rnr.cli` wires them up."""

from __future__ import annotations


def parse_labels(items: list[str]) -> dict[str, str]:
    """``--label NAME=TEXT`` arguments (of tables, ablation, curves) as configuration -> display label."""
    from ..io import InputError

    labels = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise InputError(f"--label expects NAME=TEXT, got {item!r}")
        labels[name] = text
    return labels
