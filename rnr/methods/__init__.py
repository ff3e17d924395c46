"""The method table: every registration method the pipeline can run, one module each, and what needs the
table: building a run's settings (the method picks its settings block) and loading a checkpoint (the
transform's ``kind`` picks its class).

Adding a method (rnr/README.md, "Adding a method"): write ``rnr/methods/<name>.py`` with its settings block,
transform, ``fit`` and ``METHOD`` (see :mod:`rnr.methods.base`), its tests, and one entry below. Nothing
registers itself on import: this table is the whole list.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import yaml

from ..config import Settings, SettingsError, SharedSettings, build, field_names
from ..transform import AffineTransform, Transform, read_checkpoint
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


# ------------------------------------------------------------------------------------------------ settings
def settings_from_mapping(mapping: Mapping[str, Any] | None, *, where: str = "settings") -> Settings[Any]:
    """A run's settings from a flat mapping of overrides (``{method: idir, lr: 1e-4}``): the shared block and
    the block of the named method, every value checked (rnr.config.build); ``where`` names the source in
    error messages. Unknown keys and keys of another method are :class:`~rnr.config.SettingsError`."""
    values = dict(mapping or {})
    method = values.get("method", SharedSettings.method)
    if method not in METHODS:
        raise SettingsError(f"{where}: setting 'method' must be one of {', '.join(METHODS)}; got {method!r}")
    block_cls = METHODS[method].settings
    shared_keys = field_names(SharedSettings)
    own_keys = field_names(block_cls)
    unknown = [k for k in values if k not in shared_keys and k not in own_keys]
    if unknown:
        raise SettingsError(f"{where}: " + _foreign_key_message(unknown, method, shared_keys + own_keys))
    shared = build(SharedSettings, {k: v for k, v in values.items() if k in shared_keys}, where)
    params = build(block_cls, {k: v for k, v in values.items() if k in own_keys}, where)
    return Settings(shared, params)


def settings_for_method(method: str, **overrides: Any) -> Settings[Any]:
    """The defaults of ``method``, then ``overrides``."""
    return settings_from_mapping({"method": method, **overrides}, where=f"settings for method {method!r}")


def settings_from_file(path: str | Path, overrides: Mapping[str, Any] | None = None) -> Settings[Any]:
    """Read a YAML or JSON mapping of overrides from ``path``, then apply ``overrides`` on top."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise SettingsError(f"{path}: cannot read settings ({exc})") from None
    if not isinstance(data, Mapping):
        raise SettingsError(f"{path}: expected a mapping of setting -> value, found {type(data).__name__}")
    return settings_from_mapping({**data, **dict(overrides or {})}, where=str(path))


def replace_settings(settings: Settings[Any], **changes: Any) -> Settings[Any]:
    """A copy of ``settings`` with some keys (shared or the method's) changed; the method cannot change."""
    if "method" in changes and changes["method"] != settings.method:
        raise SettingsError("replace_settings keeps the method; build new settings with settings_for_method")
    return settings_from_mapping({**settings.to_dict(), **changes}, where="replace_settings()")


def _foreign_key_message(keys: list[str], method: str, valid: list[str]) -> str:
    """Name, for each unknown key, the method(s) it belongs to, or say it belongs to none."""
    parts = []
    for key in keys:
        owners = [name for name, m in METHODS.items() if key in field_names(m.settings)]
        if owners:
            parts.append(f"setting {key!r} belongs to method {'/'.join(owners)}, not {method}")
        else:
            parts.append(f"unknown setting {key!r}")
    return "; ".join(parts) + f"; valid settings for method {method} are: {', '.join(valid)}"


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
    """Load a checkpoint written by :meth:`rnr.transform.Transform.save` onto ``device``; return (transform,
    metadata). The checkpoint's ``kind`` picks the class among :func:`transform_kinds`."""
    return read_checkpoint(path, transform_kinds(), device)


__all__ = [
    "METHODS",
    "FitContext",
    "Method",
    "MethodOutcome",
    "load_transform",
    "replace_settings",
    "settings_for_method",
    "settings_from_file",
    "settings_from_mapping",
    "transform_kinds",
]
