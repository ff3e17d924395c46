"""The built-in phantom (rnr/DATA.md, "The built-in phantom"): synthetic 4DCT cases in DIR-Lab's layout and
file forms, written by the workflow itself (``rnr phantom``), with their exact motion. Converted by the
DIR-Lab reader, since the files are laid out like DIR-Lab's."""

from __future__ import annotations

from .. import layout
from ..phantom.grid import PHANTOM_GEOMETRY, geometry
from .base import Dataset
from .dirlab import convert

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
