"""One module per ``rnr`` subcommand. Each defines ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int``; :mod:`rnr.cli` wires them up."""

from __future__ import annotations


def parse_labels(items: list[str]) -> dict[str, str]:
    """``--label NAME=TEXT`` arguments (of tables, figures, ablation, curves) as configuration -> display label;
    two configurations may not share a label (a figure would merge them)."""
    from ..io import InputError

    labels = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise InputError(f"--label expects NAME=TEXT, got {item!r}")
        labels[name] = text
    shared = sorted({t for t in labels.values() if list(labels.values()).count(t) > 1})
    if shared:
        raise InputError(f"--label: each configuration needs its own label; {shared[0]!r} is given to several")
    return labels
