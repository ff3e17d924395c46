"""The DIR-Lab 4DCT dataset (rnr/DATA.md, "DIR-Lab 4DCT"): ten cases, phases T00..T50, 300 landmarks on
T00 and T50, read from the user's unpacked folder (config ``dirlab_dir``). The reader is
:mod:`rnr.data.dirlab_reader`."""

from __future__ import annotations

from pathlib import Path

from .. import layout
from .base import Dataset

#: DIR-Lab's published no-registration TRE per case: T00 vs T50, 300 landmarks, (mean, sample std ddof=1) mm
#: (rnr/DATA.md, "No-registration TRE"). Test expectations and the phantom's calibration targets, never results.
NO_REGISTRATION_TRE_MM: dict[int, tuple[float, float]] = {
    1: (3.89, 2.78),
    2: (4.34, 3.90),
    3: (6.94, 4.05),
    4: (9.83, 4.86),
    5: (7.48, 5.51),
    6: (10.89, 6.97),
    7: (11.03, 7.43),
    8: (14.99, 9.01),
    9: (7.92, 3.98),
    10: (7.30, 6.35),
}


def convert(source_dir: str | Path, case: int, out_dir: str | Path) -> Path:
    """One DIR-Lab case folder of ``source_dir`` -> a converted case folder
    (:func:`rnr.data.dirlab_reader.convert_case`)."""
    from .dirlab_reader import convert_case  # SimpleITK: loaded when a case is converted, not when a plan is made

    return convert_case(source_dir, case, out_dir)


def geometry(case: int) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    """DIR-Lab's grid of ``case`` (:data:`rnr.data.dirlab_reader.DIRLAB_GEOMETRY`): (size_xyz, spacing_xyz)."""
    from .dirlab_reader import DIRLAB_GEOMETRY

    g = DIRLAB_GEOMETRY[case]
    return g.size_xyz, g.spacing_xyz


DATASET = Dataset(
    name="dirlab",
    title="DIR-Lab 4DCT",
    summary="DIR-Lab 4DCT: ten cases from the user's unpacked folder (config dirlab_dir)",
    cases=tuple(NO_REGISTRATION_TRE_MM),
    phases=layout.PHASES,
    landmark_phases=("T00", "T50"),
    source_key="dirlab_dir",
    source_description="the folder holding the Case{N}Pack folders of DIR-Lab, as unpacked",
    convert=convert,
    geometry=geometry,
    no_registration_tre_mm=NO_REGISTRATION_TRE_MM,
)
