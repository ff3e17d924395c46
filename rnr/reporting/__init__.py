"""Reporting: everything over all cases and configurations. ``results`` collects every metrics.json,
``stats`` computes the statistics, ``table_specs`` / ``tables`` / ``table_render`` / ``table_marks`` /
``provenance`` make the tables, ``plots`` and ``stat_plots`` the figures, ``curves``, ``ablation`` and
``sweep_plots`` the studies. Reads what evaluation wrote; imports the stages before it and the core.
"""
