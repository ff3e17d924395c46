"""Typed, frozen settings of one registration: a shared block plus the block of the chosen method.

A configuration is a flat mapping (``{method: idir, iterations: 300, lr: 1e-4}``): the workflow's
``configurations`` entries, ``rnr register --settings FILE`` and ``--set key=value`` all give one. It is
split into

* :class:`SharedSettings`: the keys every method honours (``method``, ``seed``, ``device``);
* the method's own block, a frozen dataclass derived from :class:`MethodSettings` that the method's module
  defines (``rnr/methods/<name>.py``) with its defaults, each in exactly one place. Loop-based methods
  (RNR, IDIR) derive from :class:`LoopSettings` (iterations, batch size, sampling, learning rate) and may
  override its defaults (IDIR's learning rate is 1e-5).

This module holds the blocks and the strict value loader (:func:`build`); the functions that pick a method's
block by name live with the methods' own blocks (``rnr.methods.settings.settings_from_mapping`` and friends),
so that this module imports no method. Loading is strict: an unknown key, a key that belongs to another method
("setting 'lr' belongs to method rnr/idir, not demons") and a value of the wrong type are errors naming the
key, the source and what was expected. Types are read from the dataclass annotations
(``typing.get_type_hints``), so a new setting needs no loader change.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Generic, TypeVar

import yaml

SAMPLINGS = ("random", "cycle")
DEVICES = ("auto", "cpu", "cuda")


class SettingsError(ValueError):
    """A configuration mapping or file that does not describe valid settings."""


T = TypeVar("T")


# ------------------------------------------------------------------------------------------------ blocks
@dataclass(frozen=True)
class SharedSettings:
    """Keys every method honours.

    Attributes:
        method: the registration method, a name in :data:`rnr.methods.table.METHODS` (``rnr``, ``idir``,
            ``demons``, ``identity``, ``field``).
        seed: random seed of initialisation and point sampling (recorded, unused, by deterministic methods).
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda`` (an error where CUDA is missing).
    """

    method: str = "rnr"
    seed: int = 3
    device: str = "auto"

    def __post_init__(self) -> None:
        check_choice("device", self.device, DEVICES)


@dataclass(frozen=True)
class MethodSettings:
    """Base of every method's settings block (no keys of its own). ``check`` validates values."""

    def check(self) -> None:
        """Raise :class:`SettingsError` for impossible values; subclasses extend it."""

    def __post_init__(self) -> None:
        self.check()


@dataclass(frozen=True)
class LoopSettings(MethodSettings):
    """Keys of methods fitted by the project's optimisation loop (rnr.fitting.fit).

    Attributes:
        iterations: Adam steps.
        batch_size: mask points per iteration: a count, or ``"mask/K"`` (T00 mask voxels divided by K; the
            reference run script's ``mask/30``).
        sampling: ``random`` (a fresh random batch per iteration) or ``cycle`` (one shuffled order of the
            mask voxels, cycled).
        lr: Adam learning rate.
        curve_every: record the accuracy curve (``curve.csv``, rnr/reporting/curves.py) every this many iterations;
            0: no curve. Recording does not change the fit.
    """

    iterations: int = 2500
    batch_size: int | str = 10000
    sampling: str = "random"
    lr: float = 1e-4
    curve_every: int = 0

    def check(self) -> None:
        check_choice("sampling", self.sampling, SAMPLINGS)
        check_positive(self, "iterations")
        check_positive(self, "curve_every", strict=False)
        if self.lr <= 0:
            raise SettingsError(f"setting 'lr' must be > 0, got {self.lr!r}")
        _parse_batch_size(self.batch_size)

    def resolve_batch_size(self, n_mask_points: int) -> int:
        """Points per iteration for a mask of ``n_mask_points`` voxels (at least 1, at most all)."""
        divisor = _parse_batch_size(self.batch_size)
        n = int(self.batch_size) if divisor is None else n_mask_points // divisor
        return max(1, min(n, n_mask_points))


# ------------------------------------------------------------------------------------------ the whole set
#: The method's settings block of a :class:`Settings` (RNRSettings, IDIRSettings, ...).
P = TypeVar("P", bound=MethodSettings, covariant=True)


@dataclass(frozen=True)
class Settings(Generic[P]):
    """The settings of one registration run: the shared block and the method's block (``Settings[P]``, P the
    method's settings class, so that ``settings.params`` is typed as the method's own block).

    Built by rnr/methods/settings.py, which holds each method's block (``settings_from_mapping``,
    ``settings_from_file``, ``settings_for_method``); ``to_dict`` gives the flat mapping back (what run records,
    checkpoints and tables store).
    """

    shared: SharedSettings
    params: P

    @property
    def method(self) -> str:
        return self.shared.method

    @property
    def seed(self) -> int:
        return self.shared.seed

    @property
    def device(self) -> str:
        return self.shared.device

    def to_dict(self) -> dict[str, Any]:
        """The flat mapping: shared keys first, then the method's."""
        return {**dataclasses.asdict(self.shared), **dataclasses.asdict(self.params)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


# -------------------------------------------------------------------------------------------- the loader
def field_names(cls: type) -> list[str]:
    return [f.name for f in fields(cls)]


def defaults(cls: type) -> dict[str, Any]:
    """Field name -> default of a settings dataclass (every field has one)."""
    return {f.name: f.default for f in fields(cls)}


def build(cls: type[T], values: Mapping[str, Any], where: str) -> T:
    """``cls(**values)`` after checking every value against its annotation (:func:`coerce`)."""
    hints = typing.get_type_hints(cls)
    checked = {k: coerce(k, v, hints[k], where) for k, v in values.items()}
    try:
        return cls(**checked)
    except SettingsError as exc:
        raise SettingsError(f"{where}: {exc}") from None


def coerce(key: str, value: Any, annotation: Any, where: str) -> Any:
    """Check one value against a field annotation; ints are accepted for floats, YAML lists for tuples.

    Supported annotations: bool, int, float, str, ``tuple[int, ...]`` / ``tuple[float, ...]`` and unions of
    these (``int | str``).
    """
    bad = SettingsError(
        f"{where}: setting {key!r} expects {_type_name(annotation)}, got {value!r} ({type(value).__name__})"
    )
    if typing.get_origin(annotation) in (types.UnionType, typing.Union):
        for option in typing.get_args(annotation):
            try:
                return coerce(key, value, option, where)
            except SettingsError:
                continue
        raise bad
    if typing.get_origin(annotation) is tuple:
        item_type = typing.get_args(annotation)[0]
        if not isinstance(value, list | tuple):
            raise bad
        try:
            return tuple(coerce(key, v, item_type, where) for v in value)
        except SettingsError:
            raise bad from None
    if annotation is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if annotation is float:
        if isinstance(value, str):
            # PyYAML reads "1e-4" (no dot) as a string; accept any text that is a plain number.
            try:
                return float(value)
            except ValueError:
                raise bad from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise bad
        return value
    raise AssertionError(f"unsupported settings annotation {annotation!r} for {key!r}")


def _type_name(annotation: Any) -> str:
    if typing.get_args(annotation):  # tuple[int, ...], int | str
        return str(annotation).replace("typing.", "")
    return annotation.__name__


# ---------------------------------------------------------------------------------------------- helpers
def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["key=value", ...]`` (the CLI's ``--set``) -> mapping; values are parsed as YAML scalars."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise SettingsError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
    return out


def check_choice(key: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise SettingsError(f"setting {key!r} must be one of {', '.join(choices)}; got {value!r}")


def check_positive(block: Any, *keys: str, strict: bool = True) -> None:
    """Each ``block.<key>`` must be > 0 (``strict``) or >= 0."""
    for key in keys:
        value = getattr(block, key)
        if value < 0 or (strict and value == 0):
            raise SettingsError(f"setting {key!r} must be {'>' if strict else '>='} 0, got {value!r}")


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
