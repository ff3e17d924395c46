"""Registration methods: one module per method (``rnr.py``, ``idir.py``, ``demons.py``, ...), the contract they
share (``base.py``), their settings blocks (``settings.py``, light: the workflow's plan reads it at parse time)
and the method table (``table.py``: ``METHODS``, loading checkpoints). This file imports nothing, so that
reading the settings loads no method.
"""
