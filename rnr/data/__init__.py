"""The dataset table: every dataset the workflow can run on, one module each.

Adding a dataset (rnr/README.md, "Adding a dataset"): write ``rnr/data/<name>.py`` with its reader or
converter and one :class:`~rnr.data.base.Dataset` value ``DATASET``, its tests, its sections in
``rnr/DATA.md`` and ``config/README.md``, and one entry below. Nothing registers itself on import.
"""

from __future__ import annotations

from . import copdgene, dirlab, phantom
from .base import Dataset

DATASETS: dict[str, Dataset] = {
    d.name: d for d in (phantom.DATASET, dirlab.DATASET, copdgene.DATASET, copdgene.PHANTOM_DATASET)
}

__all__ = ["DATASETS", "Dataset"]
