"""The method table: every registration method the pipeline can run, one module each, and what needs the
table: loading a checkpoint (the transform's ``kind`` picks its class). Building a run's settings needs only
the settings blocks (rnr/methods/settings.py), which import no method.

Adding a method (rnr/README.md, "Adding a method"): write ``rnr/methods/<name>.py`` with its transform, ``fit``
and ``METHOD`` (see :mod:`rnr.methods.base`), its settings block and its :data:`~rnr.methods.settings.SETTINGS`
entry in ``settings.py``, its tests, and one entry below. Nothing registers itself on import: this table is the
whole list.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..fitting.transform import AffineTransform, Transform, read_checkpoint
from . import ants, command, demons, elastix, field, identity, idir, rnr
from .base import FitContext, Method, MethodOutcome

METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        rnr.METHOD,
        idir.METHOD,
        demons.METHOD,
        identity.METHOD,
        field.METHOD,
        elastix.METHOD,
        ants.METHOD,
        command.METHOD,
    )
}

#: Transforms that no method fits but checkpoints may hold (analytic maps for tests and checks).
EXTRA_TRANSFORMS: tuple[type[Transform], ...] = (AffineTransform,)


# ------------------------------------------------------------------------------------------- checkpoints
def transform_kinds() -> dict[str, type[Transform]]:
    """``kind`` -> Transform class for every class a checkpoint may hold (methods' and extra ones)."""
    kinds: dict[str, type[Transform]] = {}
    for cls in [c for m in METHODS.values() for c in m.transforms] + list(EXTRA_TRANSFORMS):
        if kinds.get(cls.kind, cls) is not cls:
            raise AssertionError(f"two transform classes share the kind {cls.kind!r}")
        kinds[cls.kind] = cls
    return kinds


def load_transform(path: str | Path, device: str | torch.device = "cpu") -> tuple[Transform, dict[str, Any]]:
    """Load a checkpoint written by :meth:`rnr.fitting.transform.Transform.save` onto ``device``; return (transform,
    metadata). The checkpoint's ``kind`` picks the class among :func:`transform_kinds`."""
    return read_checkpoint(path, transform_kinds(), device)


__all__ = ["METHODS", "FitContext", "Method", "MethodOutcome", "load_transform", "transform_kinds"]
