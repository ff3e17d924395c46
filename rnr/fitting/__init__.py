"""Fitting: what a registration is fitted with, below the methods that use it.

The network and its one-pass jet (``network``, ``jet``), the losses, trilinear sampling and point batches,
and the mask points a point-based fit samples (``fit_data``). Imports only the shared core (coordinates,
I/O, layout, configuration), ``rnr.data.case``, ``rnr.fitting.phases``, ``rnr.fitting.transform`` and
``rnr.fitting.fit``.
"""
