"""Sweeps: one configuration's settings varied over lists of values, expanded into ordinary configurations.

The config key ``sweeps`` maps a sweep's name to its ``base`` (a configuration of the same config) and
``vary`` (setting -> list of values; several settings: every combination, in the order given)::

    sweeps:
      alpha_grad: {base: rnr, vary: {alpha_grad: [0.0, 0.05, 0.1]}}

:func:`expand_sweeps` turns each combination into a configuration: the base's entry with the values set,
named ``<base>_<key>_<value>[_<key>_<value>...]`` (e.g. ``rnr_alpha_grad_0.05``) and labelled
``<base label> key=value`` (e.g. ``RNR alpha_grad=0.05``); it is run per case x seed (the base's seeds) like
any other. A combination whose settings equal the base's (the base's own value in the list) is the base
itself, not a second run of it. Every value is checked against the method's settings block here, so a bad
sweep stops the workflow before any job runs with one line naming ``sweeps.<name>``: an unknown setting, a
value the method rejects, an empty list, a base that is not a configuration, a generated name that clashes
with a configuration or another sweep's.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..config import SettingsError
from .settings import settings_from_mapping

#: Keys a sweep cannot vary: the workflow decides them (seeds, device) or they name the configuration.
NOT_VARIED = ("method", "seed", "seeds", "device", "label")
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class SweepError(ValueError):
    """A sweep that cannot be expanded (the message names ``sweeps.<name>`` and what is wrong)."""


@dataclass(frozen=True)
class SweepRow:
    """One combination of a sweep: the configuration that runs it and the values it sets (key -> value)."""

    configuration: str
    values: Mapping[str, Any]

    def text(self) -> str:
        """``key=value`` pairs, e.g. ``alpha_grad=0.05 n_blocks=3``."""
        return " ".join(f"{k}={value_text(v)}" for k, v in self.values.items())


@dataclass(frozen=True)
class Sweep:
    """An expanded sweep: its name, base configuration, varied keys and rows (in the order of the values)."""

    name: str
    base: str
    keys: tuple[str, ...]
    rows: tuple[SweepRow, ...]

    @property
    def configurations(self) -> tuple[str, ...]:
        return tuple(r.configuration for r in self.rows)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form ``rnr ablation --spec`` reads (:func:`sweep_from_dict`)."""
        return {
            "name": self.name,
            "base": self.base,
            "keys": list(self.keys),
            "rows": [{"configuration": r.configuration, "values": dict(r.values)} for r in self.rows],
        }


def sweep_from_dict(data: Mapping[str, Any]) -> Sweep:
    """The inverse of :meth:`Sweep.to_dict`."""
    rows = tuple(SweepRow(str(r["configuration"]), dict(r["values"])) for r in data["rows"])
    return Sweep(str(data["name"]), str(data["base"]), tuple(data["keys"]), rows)


def value_text(value: Any) -> str:
    """A value as it reads in names and labels: numbers in their shortest form (0.05, 1e-05, 3), lists
    comma-joined, text as is."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return ",".join(value_text(v) for v in value)
    return str(value)


def _name(base: str, values: Mapping[str, Any]) -> str:
    parts = [base, *(f"{k}_{_NAME_UNSAFE.sub('-', value_text(v))}" for k, v in values.items())]
    return "_".join(parts)


def expand_sweeps(
    sweeps: Mapping[str, Any], entries: Mapping[str, Mapping[str, Any]]
) -> tuple[dict[str, dict[str, Any]], tuple[Sweep, ...]]:
    """Expand the config's ``sweeps`` over its (switched-on) configuration ``entries``.

    Returns (the new configurations, name -> entry, in sweep order; the sweeps). Raises :class:`SweepError`.
    """
    added: dict[str, dict[str, Any]] = {}
    expanded = []
    for name, sweep in (sweeps or {}).items():
        if sweep is False:  # switched off by a file merged over the one that defines it
            continue
        where = f"config sweeps.{name}"
        if not isinstance(sweep, Mapping) or set(sweep) != {"base", "vary"}:
            found = sorted(sweep) if isinstance(sweep, Mapping) else repr(sweep)
            raise SweepError(f"{where}: expected the keys base and vary, found {found}")
        base, vary = sweep["base"], sweep["vary"]
        if base not in entries:
            raise SweepError(
                f"{where}: base {base!r} is not a configuration of this config; expected one of {', '.join(entries)}"
            )
        if not isinstance(vary, Mapping) or not vary:
            raise SweepError(f"{where}.vary: expected setting -> list of values, found {vary!r}")
        for key, values in vary.items():
            if key in NOT_VARIED:
                raise SweepError(f"{where}.vary: {key!r} cannot be swept (the workflow sets it); vary a method setting")
            if not isinstance(values, list) or not values:
                raise SweepError(f"{where}.vary.{key}: expected a non-empty list of values, found {values!r}")
        base_entry = {k: v for k, v in (entries[base] or {}).items() if k != "label"}
        base_label = (entries[base] or {}).get("label") or base
        method_entry = {k: v for k, v in base_entry.items() if k != "seeds"}
        base_settings = _settings(method_entry, f"{where}: base {base!r}")
        rows = []
        for combination in itertools.product(*vary.values()):
            values = dict(zip(vary, combination, strict=True))
            settings = _settings({**method_entry, **values}, f"{where}.vary ({_pairs(values)})")
            if settings == base_settings:
                rows.append(SweepRow(base, values))  # the base's own value: the base's runs
                continue
            config = _name(base, values)
            if config in entries:
                raise SweepError(
                    f"{where}: the generated configuration {config!r} clashes with a configuration "
                    "of that name; rename it"
                )
            if config in added:
                raise SweepError(
                    f"{where}: the generated configuration {config!r} is made twice (by this or "
                    "another sweep); sweep each combination once"
                )
            added[config] = {**base_entry, **values, "label": f"{base_label} {_pairs(values)}"}
            rows.append(SweepRow(config, values))
        if len({r.configuration for r in rows}) != len(rows):
            raise SweepError(f"{where}: two values give the base's settings; list each value once")
        expanded.append(Sweep(name, base, tuple(vary), tuple(rows)))
    return added, tuple(expanded)


def _pairs(values: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={value_text(v)}" for k, v in values.items())


def _settings(entry: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The full settings of a configuration entry (for comparing with the base), or a one-line SweepError."""
    try:
        return settings_from_mapping(dict(entry), where=where).to_dict()
    except SettingsError as exc:
        raise SweepError(str(exc)) from None
