"""Shared fixtures: a tiny phantom dataset and one converted case, built once per test session.

* ``phantom_dataset``: phantom cases 1 and 2 at scale 0.5 (52x42x28 and 52x42x30 voxels of ~5.7 x 5.7 x
  6.4 mm, 300 landmarks each, Masks/ included), in the DIR-Lab layout; the folder path.
* ``converted_case``: case 1 of it converted with ``rnr.dirlab.convert_case``; the case folder path
  (open it with ``rnr.case.load_case``). Treat both as read-only: copy them (shutil.copytree) to modify.
"""

from __future__ import annotations

from pathlib import Path

import pytest

PHANTOM_CASES = (1, 2)
PHANTOM_SCALE = 0.5


@pytest.fixture(scope="session")
def phantom_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rnr.phantom import write_dataset

    return write_dataset(
        tmp_path_factory.mktemp("phantom") / "source", cases=PHANTOM_CASES, seed=0, scale=PHANTOM_SCALE
    )


@pytest.fixture(scope="session")
def converted_case(phantom_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rnr.dirlab import convert_case

    return convert_case(phantom_dataset, 1, tmp_path_factory.mktemp("converted") / "case1")
