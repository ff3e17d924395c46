"""Figures of the studies: a sweep's TRE against its values (``ablation/<sweep>/ablation.png``), and TRE
against iterations and against fitting seconds per configuration (``curves/curves.png``).

Builders ``build_*`` return the figure (nothing written); the writers save PNG and PDF in the house style
(rnr/figure_style.py). Both figures use the exact TRE where the dataset carries its motion, else the TRE of
the landmark files, and say which on the axis.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..figure_style import PAGES, save_figure, styled  # noqa: E402
from ..methods.sweeps import Sweep  # noqa: E402
from .curves import curve_value, mean_curves  # noqa: E402

#: A numeric axis spanning at least this ratio between its largest and smallest positive value is logarithmic.
DECADES = 10.0
_AXIS = {"tre_exact_mm": "exact TRE (mm)", "tre_mm": "TRE, landmark files (mm)"}


def value_axis(values: list) -> str:
    """How a sweep's values are laid out: ``categorical`` (not all plain numbers), ``log`` (all positive and
    spanning a decade or more), ``symlog`` (zero among positive values that span a decade: zero stays on the
    axis), else ``linear``."""
    if not values or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return "categorical"
    positive = [float(v) for v in values if v > 0]
    spans = len(positive) >= 2 and max(positive) / min(positive) >= DECADES
    if spans and all(v > 0 for v in values):
        return "log"
    if spans and all(v >= 0 for v in values):
        return "symlog"
    return "linear"


@styled
def build_ablation_figure(frame: pd.DataFrame, seeds: pd.DataFrame, sweep: Sweep) -> plt.Figure:
    """How does the TRE change with the swept value? Mean over cases per row (error bar: the 95 % bootstrap
    interval over cases), one dot per seed (the seed spread), the base as a dashed line where its value is not
    among the sweep's. ``frame``: rnr.reporting.ablation.ablation_frame; ``seeds``:
    rnr.reporting.ablation.seed_frame."""
    exact = frame["tre_exact_mean_mm"].notna().all()
    mean_col, stem = ("tre_exact_mean_mm", "tre_exact") if exact else ("tre_mean_mm", "tre")
    value = "tre_exact_mm" if exact else "tre_mm"
    rows = {r.configuration: r.values for r in sweep.rows}
    single = len(sweep.keys) == 1
    xs_raw = [rows[c][sweep.keys[0]] if single and c in rows else None for c in frame["configuration"]]
    kind = value_axis([x for x in xs_raw if x is not None]) if single else "categorical"
    width = PAGES["text"][0] * 0.75
    fig, ax = plt.subplots(figsize=(width, 3.2), layout="constrained")
    points = frame[frame["configuration"].isin(rows)]
    if kind == "categorical":
        xs = np.arange(len(points), dtype=float)
        ax.set_xticks(xs, points["value"].tolist(), rotation=30 if len(points) > 3 else 0, ha="right")
    else:
        xs = np.array([float(rows[c][sweep.keys[0]]) for c in points["configuration"]])
        if kind == "log":
            ax.set_xscale("log")
        elif kind == "symlog":
            ax.set_xscale("symlog", linthresh=min(x for x in xs if x > 0))
        ax.set_xlabel(sweep.keys[0])
    order = np.argsort(xs, kind="stable")
    y = points[mean_col].to_numpy(float)
    low = points[f"{stem}_ci_low_mm"].to_numpy(float)
    high = points[f"{stem}_ci_high_mm"].to_numpy(float)
    # A bootstrap interval over very few cases need not contain the mean: its bars then end at the mean.
    err = np.vstack([np.where(np.isfinite(low), y - low, 0), np.where(np.isfinite(high), high - y, 0)]).clip(0)
    ax.errorbar(
        xs[order],
        y[order],
        yerr=err[:, order],
        marker="o",
        color="C0",
        capsize=3,
        lw=1.2,
        label="mean over cases (95 % interval)",
    )
    seed_col = "tre_exact_mean_mm" if exact else "tre_mean_mm"
    x_of = dict(zip(points["configuration"], xs, strict=True))
    dots = seeds[seeds["configuration"].isin(x_of)]
    if len(dots):
        ax.scatter(
            dots["configuration"].map(x_of),
            dots[seed_col],
            s=12,
            color="0.35",
            zorder=3,
            label="one seed (mean over cases)",
        )
    if sweep.base not in rows:
        base = frame[frame["configuration"] == sweep.base]
        if len(base):
            ax.axhline(float(base[mean_col].iloc[0]), color="C1", ls="--", lw=1, label=f"base ({sweep.base})")
    ax.set_ylabel(_AXIS[value])
    ax.set_title(f"sweep {sweep.name}: {', '.join(sweep.keys)} of {sweep.base}")
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    return fig


def ablation_figure(frame: pd.DataFrame, seeds: pd.DataFrame, sweep: Sweep, path: str | Path) -> list[Path]:
    """Write :func:`build_ablation_figure` as ``path`` (PNG) and its PDF beside it."""
    return save_figure(build_ablation_figure(frame, seeds, sweep), path)


@styled
def build_curves_figure(curves: pd.DataFrame, labels: dict[str, str] | None = None) -> plt.Figure:
    """How does the TRE fall with iterations and with fitting seconds, per configuration? Left: against
    iterations, right: against seconds (logarithmic where the times span a decade); line: the mean over cases
    (seeds averaged first), band: ± one std over cases; a configuration without a curve is one marker (its
    final TRE after its runtime). ``curves``: rnr.reporting.curves.curve_frame."""
    labels = labels or {}
    value = curve_value(curves)
    means = mean_curves(curves, value)
    width = PAGES["text"][0]
    fig, (ax_it, ax_s) = plt.subplots(1, 2, figsize=(width, 3.4), layout="constrained", sharey=True)
    for i, (config, part) in enumerate(means.groupby("configuration", sort=False)):
        colour = f"C{i % 10}"
        label = labels.get(config, config)
        band = part["std"].fillna(0.0).to_numpy(float)
        y = part["mean"].to_numpy(float)
        for ax, x in ((ax_it, part["iteration"].to_numpy(float)), (ax_s, part["elapsed_s"].to_numpy(float))):
            if len(part) == 1 or not part["recorded"].all():
                ax.errorbar(
                    x,
                    y,
                    yerr=band,
                    marker="s",
                    ls="none",
                    color=colour,
                    capsize=3,
                    label=label if ax is ax_it else None,
                )
            else:
                ax.plot(x, y, color=colour, lw=1.2, label=label if ax is ax_it else None)
                ax.fill_between(x, y - band, y + band, color=colour, alpha=0.2, lw=0)
    seconds = means["elapsed_s"].to_numpy(float)
    seconds = seconds[np.isfinite(seconds) & (seconds > 0)]
    if len(seconds) >= 2 and seconds.max() / seconds.min() >= DECADES:
        ax_s.set_xscale("log")
    ax_it.set_xlabel("iteration")
    ax_s.set_xlabel("fitting time (s)")
    ax_it.set_ylabel(_AXIS[value])
    for ax in (ax_it, ax_s):
        ax.grid(alpha=0.3)
    n_cases = int(curves["case"].nunique()) if len(curves) else 0
    fig.suptitle(f"Accuracy against budget: mean over {n_cases} case{'s' if n_cases != 1 else ''}, band ± 1 std")
    fig.legend(loc="outside lower center", ncols=min(3, max(1, math.ceil(len(means["configuration"].unique())))))
    return fig


def curves_figure(curves: pd.DataFrame, path: str | Path, labels: dict[str, str] | None = None) -> list[Path]:
    """Write :func:`build_curves_figure` as ``path`` (PNG) and its PDF beside it."""
    return save_figure(build_curves_figure(curves, labels), path)
