"""Reporting: the figures over all cases and configurations (``plots``) and of the paired statistics
(``stat_plots``). Reads what evaluation wrote (through ``rnr.reporting.results``); imports no fitting code.
"""
