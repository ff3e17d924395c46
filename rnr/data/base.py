"""What a dataset provides: the contract behind the dataset table (:data:`rnr.data.DATASETS`).

A dataset is one module in ``rnr/data/`` defining one :class:`Dataset` value ``DATASET``. Everything from
``rnr segment`` on reads only converted case folders (:mod:`rnr.layout`), so a dataset's whole job is to say
which cases exist, where their files come from, and how one case is converted into that folder.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Dataset:
    """One row of the dataset table.

    Attributes:
        name: the config's ``dataset`` value; also the results folder ``results/<name>/``.
        summary: one line for ``rnr convert --help`` and the docs.
        cases: the case numbers that exist, ascending.
        phases: the phases a complete case has images of (a subset of :data:`rnr.layout.PHASES`, inhale
            first); a two-phase dataset lists ("T00", "T50").
        landmark_phases: the phase pair whose landmark files score the registration (T00 -> T50).
        source_key: the config key naming the user's folder of raw files (``dirlab_dir``), or None for a
            dataset the workflow generates itself (the phantom: ``generated`` is True).
        source_description: what that folder holds, for error messages and ``rnr convert --help``.
        convert: ``(source_dir, case, out_dir) -> out_dir``: writes one converted case folder.
        geometry: ``case -> (size_xyz voxels, spacing_xyz mm)`` of the dataset's nominal grid.
        no_registration_tre_mm: published TRE before registration, case -> (mean, sample std) mm of the
            landmark pair; empty when nothing is published (a synthetic dataset).
        phantom_layout: for a generated dataset, the layout ``rnr phantom --layout`` writes (``dirlab`` or
            ``copdgene``); unused for a dataset read from the user's files.
        title: the dataset's name in the tables' titles (e.g. "DIR-Lab COPDgene").
    """

    name: str
    summary: str
    cases: tuple[int, ...]
    phases: tuple[str, ...]
    landmark_phases: tuple[str, str]
    source_key: str | None
    source_description: str
    convert: Callable[[str | Path, int, str | Path], Path]
    geometry: Callable[[int], tuple[tuple[int, int, int], tuple[float, float, float]]]
    no_registration_tre_mm: Mapping[int, tuple[float, float]]
    phantom_layout: str = "dirlab"
    title: str = ""

    @property
    def generated(self) -> bool:
        return self.source_key is None

    @property
    def has_intermediate(self) -> bool:
        """Whether the cases have the phases between T00 and T50 (T10..T40) that some settings need."""
        return len(self.phases) > 2

    def check_case(self, case: int, where: str) -> None:
        """Raise ValueError naming ``where`` when ``case`` is not one of :attr:`cases`."""
        if case not in self.cases:
            raise ValueError(
                f"{where}: case {case!r} is not a case of dataset {self.name!r} (expected one of "
                f"{', '.join(str(c) for c in self.cases)})"
            )
