"""The provenance footer of the thesis tables: which settings the compared configurations share, which differ,
and the devices and package versions their runs recorded (from rnr.results.configurations_frame)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .layout import INITIAL

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


def provenance_lines(configurations: pd.DataFrame) -> list[str]:
    """The settings of the compared configurations (one row each, rnr.results.configurations_frame): those
    that differ between them (listed for the configurations that have the key), those every configuration
    shares, those only some configurations have (their method's keys, grouped by who has them), then devices
    and versions. ``initial`` is left out."""
    frame = configurations.set_index("configuration")
    frame = frame.drop(index=[c for c in frame.index if c == INITIAL])
    if frame.empty:
        return []
    keys = [k for k in PROVENANCE_KEYS if k in frame.columns]
    keys += sorted(k for k in frame.columns if k not in keys and k not in NOT_SETTINGS)
    differ, same, partial = [], [], {}
    for key in keys:
        # '-': the configuration's method has no such key; it neither differs nor shares.
        shown = {c: t for c, t in ((c, setting_text(v)) for c, v in frame[key].items()) if t != "-"}
        if len(set(shown.values())) > 1:
            differ.append(f"{key}: " + ", ".join(f"{c} {v}" for c, v in shown.items()))
        elif len(shown) == len(frame):
            same.append(f"{key} {next(iter(shown.values()))}")
        elif shown:
            partial.setdefault(", ".join(shown), []).append(f"{key} {next(iter(shown.values()))}")
    lines = []
    if differ:
        lines.append("Settings that differ: " + "; ".join(differ) + ".")
    if same:
        lines.append("Settings shared by every configuration: " + ", ".join(same) + ".")
    if partial:
        groups = "; ".join(f"{who}: {', '.join(items)}" for who, items in partial.items())
        lines.append(f"Settings of some configurations only (their method's): {groups}.")
    devices = sorted({d for text in frame["devices"] for d in str(text).split(", ")})
    versions = sorted(set(frame["versions"]))
    lines.append(f"Devices: {', '.join(devices)}. Versions: {' | '.join(versions)}.")
    return lines
