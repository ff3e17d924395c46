"""The DIR-Lab COPDgene dataset (rnr/DATA.md, "DIR-Lab COPDgene"): ten breath-hold inhale/exhale pairs of COPD
patients, 300 landmarks on each, read from the user's unpacked folder (config ``copdgene_dir``). Two phases:
inhale is T00, exhale T50. The reader is :mod:`rnr.data.copdgene_reader`.

Also the phantom written in COPDgene's layout (``rnr phantom --layout copdgene``, dataset
``copdgene_phantom``): the same reader converts it, so a fresh clone exercises the reader and the chain.
"""

from __future__ import annotations

from pathlib import Path

from .base import Dataset

#: The two phases of a COPDgene case: inhale (iBH) as T00, exhale (eBH) as T50.
PHASES = ("T00", "T50")
CASES = tuple(range(1, 11))


def convert(source_dir: str | Path, case: int, out_dir: str | Path) -> Path:
    """One COPDgene case of ``source_dir`` -> a converted case folder
    (:func:`rnr.data.copdgene_reader.convert_case`)."""
    from .copdgene_reader import convert_case  # SimpleITK: loaded when a case is converted, not when a plan is made

    return convert_case(source_dir, case, out_dir)


def geometry(case: int) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    """COPDgene's grid of ``case`` (:data:`rnr.data.copdgene_reader.COPDGENE_GEOMETRY`): (size_xyz, spacing_xyz)."""
    from .copdgene_reader import COPDGENE_GEOMETRY

    g = COPDGENE_GEOMETRY[case]
    return g.size_xyz, g.spacing_xyz


def phantom_geometry(case: int) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    """The COPDgene-layout phantom's grid of ``case`` at scale 1 (:func:`rnr.data.phantom.copdgene.geometry`)."""
    from .phantom.copdgene import geometry as grid

    return grid(case, 1.0)


DATASET = Dataset(
    name="copdgene",
    title="DIR-Lab COPDgene",
    summary="DIR-Lab COPDgene: ten inhale/exhale breath-hold pairs from the user's unpacked folder (copdgene_dir)",
    cases=CASES,
    phases=PHASES,
    landmark_phases=("T00", "T50"),
    source_key="copdgene_dir",
    source_description="the folder holding the copd1 ... copd10 folders of DIR-Lab COPDgene, as unpacked",
    convert=convert,
    geometry=geometry,
    # Only case 1's value is quoted here for orientation (rnr/DATA.md); the pipeline computes every case's value
    # from the landmark files (the `initial` row of the tables) and never reads this mapping as a result.
    no_registration_tre_mm={1: (26.33, 11.44)},
)

PHANTOM_DATASET = Dataset(
    name="copdgene_phantom",
    title="built-in phantom in COPDgene's layout",
    summary="the built-in phantom in COPDgene's layout (rnr phantom --layout copdgene): two breath-hold phases",
    cases=CASES,
    phases=PHASES,
    landmark_phases=("T00", "T50"),
    source_key=None,
    source_description="the folder rnr phantom --layout copdgene writes (copd{N}/copd{N}/ folders, geometry.json)",
    convert=convert,
    geometry=phantom_geometry,
    no_registration_tre_mm={},
    phantom_layout="copdgene",
)
