"""The built-in synthetic 4DCT dataset: ten lung cases in the DIR-Lab layout with known motion, acquired
like 4DCT (rnr/DATA.md shows its realism table).

One module per job:

* ``anatomy.py``: the analytic anatomy in mm (body, lungs, heart, spine, ribs, airways, vessel trees grown by
  space colonisation). Shapes only.
* ``motion.py``: the analytic breathing motion (:class:`Motion`, lungs sliding along a still spine and chest
  wall, phase lags), defined by its backward map. The truth: rnr/data/truth.py reads it back.
* ``calibrate.py``: 300 landmarks on distinct vessel-bifurcation voxels; amplitude and apex-to-base exponent
  fitted per case to DIR-Lab's published identity TRE mean and std on the rounded landmark files.
* ``render.py``: every phase rendered from the anatomy at the backward-mapped positions of its own voxel
  grid: partial volume, slice profile, mass-preserving lung density, partly shared parenchyma detail, noise.
* ``grid.py``: the voxel grid per case and the supported scale and noise ranges (numbers only).
* ``write.py``: the DIR-Lab layout, geometry.json, the truth files and the realism table (truth/summary.csv).

This package is also the phantom's entry in the dataset table (:data:`DATASET`, listed in
``rnr.data.DATASETS``). The generator's names are re-exported here lazily, so that the dataset table and the
truth reader (rnr/data/truth.py, which needs only ``motion`` and ``anatomy``) import none of the generator.
"""

from __future__ import annotations

import importlib
from typing import Any

from ... import layout
from ..base import Dataset
from ..dirlab import convert
from .grid import PHANTOM_GEOMETRY, geometry

DATASET = Dataset(
    name="phantom",
    title="built-in 4DCT phantom",
    summary="the built-in synthetic 4DCT (rnr phantom): DIR-Lab's layout, exact motion, no download",
    cases=tuple(sorted(PHANTOM_GEOMETRY)),
    phases=layout.PHASES,
    landmark_phases=("T00", "T50"),
    source_key=None,
    source_description="the folder rnr phantom writes (Case{N}Pack folders in DIR-Lab's layout, truth/)",
    # The files are in DIR-Lab's layout: DIR-Lab's converter reads them, copying truth/case{N}.npz along.
    convert=convert,
    geometry=geometry,  # at scale 1 (rnr phantom --scale shrinks or grows the grid)
    # Nothing is published for a synthetic dataset: it is calibrated to DIR-Lab's table instead.
    no_registration_tre_mm={},
)

_EXPORTS = {
    "motion": ("BREATHING", "Motion", "phase_time"),
    "anatomy": ("Anatomy",),
    "calibrate": (
        "MAX_DISPLACEMENT_MARGIN",
        "MAX_DISPLACEMENT_MM",
        "TARGET_IDENTITY_STD_MM",
        "TARGET_IDENTITY_TRE_MM",
        "motion_statistics",
    ),
    "grid": (
        "ACQUISITION_FACTOR",
        "FIELD_OF_VIEW_MM",
        "NOISE_HU",
        "NOISE_RANGE_HU",
        "PHANTOM_GEOMETRY",
        "SCALE_RANGE",
        "geometry",
    ),
    "write": (
        "LANDMARK_STYLE",
        "REALISM_COLUMNS",
        "SUMMARY_FILE",
        "_landmark_text",
        "case_folder_name",
        "check_options",
        "image_file_name",
        "landmark_file_path",
        "mask_file_path",
        "read_summary",
        "realism_text",
        "sampled4d_file_path",
        "write_case",
        "write_dataset",
        "write_mask",
    ),
    # Reading the truth lives in rnr/data/truth.py; these names stay here for older callers.
    "..truth": ("PhantomTruth", "load_truth", "load_truth_file", "true_positions_vox", "truth_file"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted([*_WHERE, "DATASET"])


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'rnr.data.phantom' has no attribute {name!r}")
    relative = module if module.startswith(".") else "." + module
    value = getattr(importlib.import_module(relative, __name__), name)
    globals()[name] = value
    return value
