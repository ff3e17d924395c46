"""Typed, frozen settings for one registration, with the method defaults of method.md.

A workflow ``configurations`` entry (name -> mapping) overrides these defaults key by key. Unknown keys and
wrong types are errors that name the key, the expected type and the valid keys.

Method-specific defaults: the baselines ``idir`` and ``demons`` share some keys with RNR but not their
default values (IDIR's learning rate is 1e-5, not 1e-4; neither uses intermediate phases). When a mapping
selects a method, :meth:`Settings.from_mapping` fills every key the mapping does not give from
:data:`METHOD_DEFAULTS` [method] before the class defaults, so ``{method: idir}`` alone is IDIR as published
and an explicit key still wins (``{method: idir, lr: 1e-4}``). Keys that only one method uses have their own
names (``alpha_bending``, ``omega0``, ``idir_width``; ``demons_*``) and are ignored by the other methods.
Constructing ``Settings(method="idir")`` directly bypasses the method defaults; use
``Settings.from_mapping({"method": "idir"})`` (or :meth:`Settings.for_method`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

METHODS = ("rnr", "idir", "demons")
SAMPLINGS = ("random", "cycle")
PAIRINGS = ("seed", "trajectory")
DEVICES = ("auto", "cpu", "cuda")

#: Defaults that depend on the method, for keys shared with RNR (applied by Settings.from_mapping when the
#: mapping does not give the key). IDIR: Adam learning rate 1e-5 (Wolterink et al. 2022); IDIR and demons
#: register T00 <-> T50 only.
METHOD_DEFAULTS: dict[str, dict[str, Any]] = {
    "rnr": {},
    "idir": {"lr": 1e-5, "intermediate": False},
    "demons": {"intermediate": False},
}


class SettingsError(ValueError):
    """A configuration mapping or file that does not describe valid settings."""


@dataclass(frozen=True)
class Settings:
    """All settings of one registration run. Defaults are RNR's model defaults (method.md).

    ``batch_size`` is a point count or the string ``"mask/K"`` (K a positive integer: the number of T00
    mask voxels divided by K, the reference run script's ``mask/30``).

    Baseline-only keys (ignored by the other methods): IDIR (rnr/idir.py) ``alpha_bending`` (weight of the
    bending energy, a mean over points: 1e-3), ``omega0`` (SIREN frequency factor, 32), ``idir_width``
    (SIREN hidden width, 256); demons (rnr/demons.py) ``demons_iterations`` (iterations per level, coarse to
    fine), ``demons_shrink`` (shrink factor per level on the finest axis), ``demons_sigma`` (Gaussian
    smoothing of the displacement field, voxels of the level).
    """

    method: str = "rnr"
    iterations: int = 2500
    batch_size: int | str = 10000
    sampling: str = "random"
    intermediate: bool = True
    pairing: str = "seed"
    n_blocks: int = 5
    width: int = 100
    shared_weights: bool = False
    alpha_grad: float = 1.0
    alpha_weight: float = 1e-4
    lr: float = 1e-4
    seed: int = 3
    device: str = "auto"
    # IDIR baseline (rnr/idir.py)
    alpha_bending: float = 1e-3
    omega0: float = 32.0
    idir_width: int = 256
    # demons baseline (rnr/demons.py)
    demons_iterations: tuple[int, ...] = (200, 100, 50)
    demons_shrink: tuple[int, ...] = (4, 2, 1)
    demons_sigma: float = 1.5

    def __post_init__(self) -> None:
        _check_choice("method", self.method, METHODS)
        _check_choice("sampling", self.sampling, SAMPLINGS)
        _check_choice("pairing", self.pairing, PAIRINGS)
        _check_choice("device", self.device, DEVICES)
        for key in ("iterations", "n_blocks", "width"):
            if getattr(self, key) < 1:
                raise SettingsError(f"setting {key!r} must be >= 1, got {getattr(self, key)!r}")
        for key in ("alpha_grad", "alpha_weight"):
            if getattr(self, key) < 0:
                raise SettingsError(f"setting {key!r} must be >= 0, got {getattr(self, key)!r}")
        if self.lr <= 0:
            raise SettingsError(f"setting 'lr' must be > 0, got {self.lr!r}")
        _parse_batch_size(self.batch_size)
        self._check_baseline_keys()

    def _check_baseline_keys(self) -> None:
        for key in ("demons_iterations", "demons_shrink"):
            # Lists given to the constructor directly become tuples (a frozen dataclass should hash).
            object.__setattr__(self, key, tuple(getattr(self, key)))
        if self.idir_width < 1:
            raise SettingsError(f"setting 'idir_width' must be >= 1, got {self.idir_width!r}")
        if self.omega0 <= 0:
            raise SettingsError(f"setting 'omega0' must be > 0, got {self.omega0!r}")
        for key in ("alpha_bending", "demons_sigma"):
            if getattr(self, key) < 0:
                raise SettingsError(f"setting {key!r} must be >= 0, got {getattr(self, key)!r}")
        if not self.demons_shrink or len(self.demons_iterations) != len(self.demons_shrink):
            raise SettingsError(
                "settings 'demons_iterations' and 'demons_shrink' need one entry per resolution level "
                f"(the same non-zero length); got {list(self.demons_iterations)} and "
                f"{list(self.demons_shrink)}"
            )
        if any(s < 1 for s in self.demons_shrink) or any(i < 0 for i in self.demons_iterations):
            raise SettingsError(
                "setting 'demons_shrink' needs factors >= 1 and 'demons_iterations' counts "
                f">= 0; got {list(self.demons_shrink)} and {list(self.demons_iterations)}"
            )

    # -- construction -------------------------------------------------------------------------------
    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any] | None, *, where: str = "settings") -> Settings:
        """Build from a mapping of overrides; ``where`` names the source in error messages."""
        mapping = dict(mapping or {})
        valid = {f.name: f for f in fields(cls)}
        unknown = sorted(set(mapping) - set(valid))
        if unknown:
            raise SettingsError(
                f"{where}: unknown setting(s) {', '.join(map(repr, unknown))}; valid settings are: {', '.join(valid)}"
            )
        values = {k: _coerce(k, v, valid[k].type, where) for k, v in mapping.items()}
        method = values.get("method", cls.method)
        for key, value in METHOD_DEFAULTS.get(method, {}).items():
            values.setdefault(key, value)
        try:
            return cls(**values)
        except SettingsError as exc:
            raise SettingsError(f"{where}: {exc}") from None

    @classmethod
    def for_method(cls, method: str, **overrides: Any) -> Settings:
        """The defaults of ``method`` (METHOD_DEFAULTS over the class defaults), then ``overrides``."""
        return cls.from_mapping({"method": method, **overrides}, where=f"settings for method {method!r}")

    @classmethod
    def from_file(cls, path: str | Path, overrides: Mapping[str, Any] | None = None) -> Settings:
        """Read a YAML or JSON mapping of overrides from ``path``, then apply ``overrides`` on top."""
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise SettingsError(f"{path}: cannot read settings ({exc})") from None
        if not isinstance(data, Mapping):
            raise SettingsError(f"{path}: expected a mapping of setting -> value, found {type(data).__name__}")
        return cls.from_mapping({**data, **dict(overrides or {})}, where=str(path))

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    # -- derived values -----------------------------------------------------------------------------
    def resolve_batch_size(self, n_mask_points: int) -> int:
        """Points per iteration for a mask of ``n_mask_points`` voxels (at least 1, at most all)."""
        divisor = _parse_batch_size(self.batch_size)
        n = int(self.batch_size) if divisor is None else n_mask_points // divisor
        return max(1, min(n, n_mask_points))


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["key=value", ...]`` (the CLI's ``--set``) -> mapping; values are parsed as YAML scalars."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise SettingsError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
    return out


def _check_choice(key: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise SettingsError(f"setting {key!r} must be one of {', '.join(choices)}; got {value!r}")


def _parse_batch_size(value: int | str) -> int | None:
    """Return the divisor K for ``"mask/K"``, or None for a plain positive integer; raise otherwise."""
    if isinstance(value, bool):
        raise SettingsError(f"setting 'batch_size' must be a positive integer or 'mask/K', got {value!r}")
    if isinstance(value, int):
        if value < 1:
            raise SettingsError(f"setting 'batch_size' must be >= 1, got {value}")
        return None
    text = str(value).replace(" ", "")
    if text.startswith("mask/") and text[5:].isdigit() and int(text[5:]) > 0:
        return int(text[5:])
    raise SettingsError(f"setting 'batch_size' must be a positive integer or 'mask/K' (e.g. mask/30), got {value!r}")


def _coerce(key: str, value: Any, annotation: Any, where: str) -> Any:
    """Check one value against its field's type; ints are accepted for floats, nothing else is coerced."""
    type_text = str(annotation)
    bad = SettingsError(f"{where}: setting {key!r} expects {type_text}, got {value!r} ({type(value).__name__})")
    if type_text == "bool":
        if not isinstance(value, bool):
            raise bad
        return value
    if type_text == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if type_text == "float":
        if isinstance(value, str):
            # PyYAML reads "1e-4" (no dot) as a string; accept any text that is a plain number.
            try:
                return float(value)
            except ValueError:
                raise bad from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad
        return float(value)
    if type_text == "str":
        if not isinstance(value, str):
            raise bad
        return value
    if type_text == "tuple[int, ...]":
        # A YAML list (or a tuple) of integers, e.g. demons_iterations: [200, 100, 50].
        if not isinstance(value, list | tuple) or any(isinstance(v, bool) or not isinstance(v, int) for v in value):
            raise bad
        return tuple(value)
    if type_text == "int | str":
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise bad
        return value
    raise AssertionError(f"unhandled settings type {type_text} for {key}")
