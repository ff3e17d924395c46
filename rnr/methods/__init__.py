"""The method table: every registration method the pipeline can run, one module each.

Adding a method (rnr/README.md, "Adding a method"): write ``rnr/methods/<name>.py`` with its settings block,
transform, ``fit`` and ``METHOD`` (see :mod:`rnr.methods.base`), its tests, and one entry below. Nothing
registers itself on import: this table is the whole list.
"""

from __future__ import annotations

from ..transform import AffineTransform, Transform
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


def transform_kinds() -> dict[str, type[Transform]]:
    """``kind`` -> Transform class for every class a checkpoint may hold (methods' and extra ones)."""
    kinds: dict[str, type[Transform]] = {}
    for cls in [c for m in METHODS.values() for c in m.transforms] + list(EXTRA_TRANSFORMS):
        if kinds.get(cls.kind, cls) is not cls:
            raise AssertionError(f"two transform classes share the kind {cls.kind!r}")
        kinds[cls.kind] = cls
    return kinds


__all__ = ["METHODS", "FitContext", "Method", "MethodOutcome", "transform_kinds"]
