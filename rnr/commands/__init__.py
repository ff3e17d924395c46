"""One module per ``rnr`` subcommand. Each defines ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int``; :mod:`rnr.cli` wires them up."""
