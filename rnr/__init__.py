"""rnr: a benchmark pipeline for RNR (Residual Neural Network-based Registration) on lung 4DCT."""

__version__ = "0.1.0"
