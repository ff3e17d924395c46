"""The provenance footer of the thesis tables: which settings the compared configurations share, which differ,
and the devices and package versions their runs recorded (from rnr.reporting.results.configurations_frame)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..layout import INITIAL

#: Settings shown in the provenance footer, in this order (others follow alphabetically).
PROVENANCE_KEYS = (
    "method",
    "iterations",
    "batch_size",
    "sampling",
    "lr",
    "intermediate",
    "pairing",
    "n_blocks",
    "width",
    "shared_weights",
    "alpha_grad",
    "alpha_weight",
    "seeds",
)
#: Columns of the configurations frame that are not settings.
NOT_SETTINGS = ("configuration", "label", "n_runs", "devices", "versions")


def setting_text(value: Any) -> str:
    """A setting as the footer shows it: '-' when the configuration has no such key, integral floats as ints
    (a column mixing methods turns 2500 into 2500.0)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    if isinstance(value, float) and value.is_integer() and abs(value) >= 1:
        return str(int(value))
    return str(value)


def seeds_text(value: Any) -> str:
    """The ``seeds`` setting (seed values separated by spaces, e.g. '3 4 5') as words: 'seed 3 (one run per
    case)', 'seeds 3, 4, 5 (3 runs per case)'; a bare '3' must not read as three seeds."""
    seeds = setting_text(value).split()
    if len(seeds) == 1:
        return f"seed {seeds[0]} (one run per case)"
    return f"seeds {', '.join(seeds)} ({len(seeds)} runs per case)"


def _shown(key: str, value: Any) -> str:
    return seeds_text(value) if key == "seeds" else f"{key} {setting_text(value)}"


def provenance_lines(
    configurations: pd.DataFrame, labels: dict[str, str] | None = None, full: bool = False
) -> list[str]:
    """The settings of the compared configurations (one row each, rnr.reporting.results.configurations_frame), as short
    sentences a reader can parse: per configuration (by display label, from ``labels``) the settings that
    differ between them; the settings every configuration shares; those only some configurations have (their
    method's keys, grouped by who has them; without ``full`` a pointer to configurations.csv instead, so the
    note under a thesis table stays short); then devices and versions. ``initial`` is left out."""
    labels = labels or {}
    frame = configurations.set_index("configuration")
    frame = frame.drop(index=[c for c in frame.index if c == INITIAL])
    if frame.empty:
        return []
    keys = [k for k in PROVENANCE_KEYS if k in frame.columns]
    keys += sorted(k for k in frame.columns if k not in keys and k not in NOT_SETTINGS)
    differ: dict[str, list[str]] = {}
    same, partial = [], {}
    for key in keys:
        # '-': the configuration's method has no such key; it neither differs nor shares.
        shown = {c: v for c, v in frame[key].items() if setting_text(v) != "-"}
        if len({setting_text(v) for v in shown.values()}) > 1:
            for c, v in shown.items():
                differ.setdefault(c, []).append(_shown(key, v))
        elif len(shown) == len(frame):
            same.append(_shown(key, next(iter(shown.values()))))
        elif shown:
            who = ", ".join(labels.get(c, c) for c in shown)
            partial.setdefault(who, []).append(_shown(key, next(iter(shown.values()))))
    lines = []
    if differ:
        parts = [f"{labels.get(c, c)}: {', '.join(items)}" for c, items in differ.items()]
        lines.append("Settings that differ: " + "; ".join(parts) + ".")
    if same:
        lines.append("Shared by every configuration: " + ", ".join(same) + ".")
    if partial and full:
        groups = "; ".join(f"{who}: {', '.join(items)}" for who, items in partial.items())
        lines.append(f"Method settings: {groups}.")
    elif partial:  # the thesis tables: a pointer, not every key of every method under the table
        lines.append("The settings of each method: `configurations.csv`.")
    devices = sorted({d for text in frame["devices"] for d in str(text).split(", ")})
    versions = sorted(set(frame["versions"]))
    lines.append(f"Devices: {', '.join(devices)}. Versions: {' | '.join(versions)}.")
    return lines
