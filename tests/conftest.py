"""Shared fixtures: a tiny phantom dataset and one converted case, built once per test session.

* ``phantom_dataset``: phantom cases 1 and 2 at scale 0.5 (68x55x17 and 59x48x18 voxels of ~4.3-5.1 mm
  in-plane and 11 mm slices, 300 landmarks each, Masks/ included), in the DIR-Lab layout; the folder path.
* ``converted_case``: case 1 of it converted with ``rnr.dirlab.convert_case``; the case folder path
  (open it with ``rnr.case.load_case``). Treat both as read-only: copy them (shutil.copytree) to modify.
* ``case`` / ``mask``: that converted case loaded (``ConvertedCase``) and its provided T00 mask (bool array),
  per test module; a module may define its own ``case`` instead.
* ``phantom_case8``: phantom case 8 (the largest motion) at scale 0.5, converted; for the baselines' fits.
* ``one_thread``: torch on one thread for the test (fits of tiny cases: no OpenMP hand-offs on two shared
  cores).
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


@pytest.fixture(scope="module")
def case(converted_case):
    from rnr.case import load_case

    return load_case(converted_case)


@pytest.fixture(scope="module")
def mask(case):
    return case.load_mask(case.provided_mask_path)


@pytest.fixture
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def phantom_case8(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rnr.dirlab import convert_case
    from rnr.phantom import write_dataset

    root = tmp_path_factory.mktemp("phantom_case8")
    write_dataset(root / "source", cases=[8], seed=0, scale=PHANTOM_SCALE)
    return convert_case(root / "source", 8, root / "case8")
