"""Fitting: what a registration is fitted with, below the methods that use it.

The optimisation loop (``fit``), fitted maps and checkpoints (``transform``), which phases a fit compares
(``phases``), the run folder (``rundir``), the network and its one-pass jet (``network``, ``jet``), the losses,
trilinear sampling and point batches, and the mask points a point-based fit samples (``fit_data``). Imports
only the shared core and the data stage (a converted case).
"""
