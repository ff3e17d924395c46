"""The phantom's voxel grid per case: field of view, DIR-Lab's voxel times :data:`ACQUISITION_FACTOR`, the
supported ``scale`` and noise ranges. Numbers only (numpy), so that the dataset table and ``rnr phantom
--help`` read the grid without loading the generator."""

from __future__ import annotations

import numpy as np

#: Field of view per case (x, y, z) mm: wider than deep (a chest), so x/y mix-ups change shapes. The anatomy
#: and the motion are defined on it and do not depend on the voxel grid.
FIELD_OF_VIEW_MM: dict[int, tuple[float, float, float]] = {
    1: (291.2, 235.2, 179.2),
    2: (301.6, 243.6, 192.0),
    3: (301.6, 243.6, 185.6),
    4: (301.6, 243.6, 184.8),
    5: (301.6, 243.6, 192.0),
    6: (313.6, 246.4, 192.0),
    7: (313.6, 246.4, 204.8),
    8: (313.6, 246.4, 192.0),
    9: (313.6, 246.4, 192.0),
    10: (313.6, 246.4, 184.8),
}

#: DIR-Lab's voxel per case (in-plane, slice) mm, the acquisition the phantom copies (the table of
#: rnr/data/dirlab_reader.py).
DIRLAB_VOXEL_MM: dict[int, tuple[float, float]] = {
    1: (0.97, 2.5),
    2: (1.16, 2.5),
    3: (1.15, 2.5),
    4: (1.13, 2.5),
    5: (1.10, 2.5),
    **{c: (0.97, 2.5) for c in range(6, 11)},
}

#: Phantom voxel = DIR-Lab voxel times this factor at scale 1 (module docstring).
ACQUISITION_FACTOR = 2.2


def _grid(case: int, scale: float) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    inplane, slice_mm = DIRLAB_VOXEL_MM[case]
    target = np.array([inplane, inplane, slice_mm]) * ACQUISITION_FACTOR / scale
    fov = np.asarray(FIELD_OF_VIEW_MM[case])
    size = tuple(max(8, int(round(v))) for v in fov / target)
    spacing = tuple(round(float(f / n), 4) for f, n in zip(fov, size, strict=True))
    return size, spacing  # type: ignore[return-value]


#: Phantom grid per case at scale 1: size (x, y, z) voxels, spacing (x, y, z) mm.
PHANTOM_GEOMETRY: dict[int, tuple[tuple[int, int, int], tuple[float, float, float]]] = {
    case: _grid(case, 1.0) for case in FIELD_OF_VIEW_MM
}

#: Supported ``scale`` range: below it some case has fewer than 300 distinct landmark voxels in its lungs
#: (tested at the bound); the top (DIR-Lab's own voxel x 1.1, about 4 M voxels, 8 times scale 1's) is the GPU
#: check's DIR-Lab-size case (its time and memory not measured yet).
SCALE_RANGE = (0.5, 2.0)
#: Supported noise range (std, HU); the default is in the middle of clinical 4DCT's 20-40 HU.
NOISE_RANGE_HU = (0.0, 60.0)
NOISE_HU = 30.0


def geometry(case: int, scale: float = 1.0) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    """Phantom grid of ``case`` at ``scale``: (size_xyz, spacing_xyz). The field of view (size * spacing) stays
    :data:`FIELD_OF_VIEW_MM`; spacing is rounded to 4 decimals (the values written to geometry.json)."""
    if case not in FIELD_OF_VIEW_MM:
        raise ValueError(f"phantom cases are 1..10, got {case}")
    return _grid(case, scale)
