"""Figures of the paired comparisons and of the spread over seeds (seaborn/matplotlib, PNG + PDF).

Both figures are 6.3 in wide (a thesis text width), use fonts of at least 8 pt and embed TrueType fonts in
the PDF (``pdf.fonttype = 42``) so the text stays editable and searchable. They take the tidy per-landmark
frame described in :mod:`rnr.reporting.stats` and compute everything through that module, so the plotted numbers are
the tabulated ones.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from ..figure_style import PAGES, STYLE, save_figure  # noqa: E402  (one house style for every figure)
from . import stats  # noqa: E402
from .plots import case_palette, palette  # noqa: E402
from .results import configuration_order  # noqa: E402
from .table_marks import MARK_BETTER, MARK_WORSE, markers  # noqa: E402

WIDTH_IN = PAGES["text"][0]
#: What a compared value is called in the figure.
VALUE_TITLES = {"tre_mm": "TRE", "tre_exact_mm": "exact TRE", "tre_snapped_mm": "snapped TRE"}


def _configurations(names: Sequence[str], order: Sequence[str] | None, drop: Sequence[str]) -> list[str]:
    present = list(dict.fromkeys(names))
    chosen = [c for c in (order if order is not None else present) if c in present]
    return [c for c in chosen if c not in drop]


def paired_differences(
    landmarks: pd.DataFrame,
    reference: str,
    out: Path,
    configurations: Sequence[str] | None = None,
    tests: pd.DataFrame | None = None,
    value: str = stats.DEFAULT_VALUE,
    name: str = "paired_differences",
) -> list[Path]:
    """Per-landmark paired TRE differences against ``reference``, one panel per compared configuration.

    ``value``: the per-landmark column compared, ``tre_mm`` (file landmarks) or ``tre_exact_mm`` (exact
    positions, the phantom); ``tests`` may hold the tests of several values, the figure uses those of ``value``.

    Each panel: x = case, y = ``t_l(config) - t_l(reference)`` in mm for every landmark l (TRE averaged over
    seeds first, as in the tests), a box (quartiles, whiskers 1.5 IQR, no fliers) under the points, the
    median difference marked by a black bar, and a dashed zero line; below zero the configuration is
    better. ``tests`` (:func:`rnr.reporting.stats.paired_tests`'s frame) adds the significance markers above the cases
    and the across-case result in the panel title. ``configurations`` default: all but the reference and
    ``initial``. Writes ``out/{name}.png`` and ``.pdf``.
    """
    averaged = stats.seed_averaged(landmarks, value)
    configs = _configurations(
        averaged["configuration"].tolist(),
        configurations,
        drop=(reference,) if configurations is not None else (reference, stats.INITIAL),
    )
    if reference not in set(averaged["configuration"]) or not configs:
        raise ValueError(f"need the reference {reference!r} and at least one other configuration to compare")
    parts = []
    for config in configs:
        diff = stats.paired_landmarks(averaged, config, reference, value)
        parts.append(diff.assign(configuration=config))
    data = pd.concat(parts, ignore_index=True)
    cases = sorted(data["case"].unique())
    what = VALUE_TITLES.get(value, value)
    if tests is not None:
        tests = tests[tests["value"] == value]
    marks = markers(tests, value) if tests is not None else {}
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(
            len(configs),
            1,
            figsize=(WIDTH_IN, 0.6 + 1.9 * len(configs)),
            sharex=True,
            squeeze=False,
            layout="constrained",
        )
        # The configurations' colours of every other figure (the palette over the full order).
        every = palette(configuration_order(landmarks["configuration"].tolist(), configurations))
        colours = [every[c] for c in configs]
        for ax, config, colour in zip(axes[:, 0], configs, colours, strict=True):
            part = data[data["configuration"] == config]
            kw = dict(data=part, x="case", y="diff", order=cases, ax=ax)
            with warnings.catch_warnings():
                # seaborn 0.13 passes matplotlib's deprecated ``vert`` to boxplot; nothing to act on here.
                warnings.filterwarnings("ignore", message=".*vert: bool.*")
                sns.boxplot(**kw, color=colour, showfliers=False, width=0.6, linewidth=0.7, boxprops={"alpha": 0.4})
            sns.stripplot(**kw, color=colour, size=1.5, alpha=0.5, jitter=0.2, edgecolor="none")
            medians = part.groupby("case")["diff"].median().reindex(cases)
            median = ax.scatter(
                np.arange(len(cases)), medians, marker="_", s=260, linewidths=2.0, color="black", zorder=5,
                label="median",
            )  # fmt: skip
            ax.axhline(0.0, color="0.3", lw=0.8, ls="--", zorder=1)
            if marks:  # head room above the points for the markers
                low, high = ax.get_ylim()
                ax.set_ylim(low, high + 0.12 * (high - low))
                for i, case in enumerate(cases):
                    mark = marks.get((int(case), config), "")
                    if mark:
                        ax.text(i, high + 0.05 * (high - low), mark, ha="center", va="center", fontsize=10)
            title = f"{config} \u2212 {reference}"
            if tests is not None:
                row = tests[(tests["scope"] == "all") & (tests["configuration"] == config)]
                if len(row) and np.isfinite(row["p_holm"].iloc[0]):
                    r = row.iloc[0]
                    title += (
                        f"   (case means: median {r['median_diff_mm']:+.2f} mm, Holm p = {r['p_holm']:.3g}"
                        f"{' ' + marks[('all', config)] if marks.get(('all', config)) else ''})"
                    )
            ax.set_title(title, loc="left")
            ax.set_ylabel(f"\u0394{what} (mm)")
            ax.set_xlabel("")
            ax.grid(axis="y", alpha=0.3)
        axes[-1, 0].set_xlabel("case")
        # Above the panels, not inside one: a legend in a panel would cover landmarks.
        fig.legend(handles=[median], loc="outside upper right", frameon=False)
        lines = [
            f"Paired per-landmark {what} differences against {reference}",
            f"{what} averaged over seeds per landmark; below 0: smaller {what} than the reference",
        ]
        if marks:
            alpha = float(tests["alpha"].iloc[0])
            lines.append(
                f"{MARK_BETTER} / {MARK_WORSE}: significantly smaller / larger "
                f"(Wilcoxon signed-rank, Holm, \u03b1 = {alpha:g})"
            )
        fig.suptitle("\n".join(lines))
        return save_figure(fig, Path(out) / name)


def tre_seed_spread(
    landmarks: pd.DataFrame,
    out: Path,
    order: Sequence[str] | None = None,
    include_initial: bool = False,
    value: str = stats.DEFAULT_VALUE,
    name: str = "tre_seed_spread",
) -> list[Path]:
    """Mean TRE per configuration with the spread over seeds as error bars.

    For each configuration (x): small dots = the case means (seed-averaged, :func:`rnr.reporting.stats.case_summary`)
    with error bars ± the std over seeds of that case mean (ddof = 1); a black diamond = the dataset mean
    (mean over cases) with error bars ± the std over seeds of the per-seed dataset mean
    (:func:`rnr.reporting.stats.seed_summary`). One seed: no error bars. ``initial`` (5-10 mm on DIR-Lab) is left out
    unless ``include_initial``, so it does not flatten the scale. Writes ``out/{name}.png`` and ``.pdf``.
    """
    prefix = stats.column_prefix(value)
    mean_col, seed_col = f"{prefix}mean_mm", f"{prefix}seed_std_mm"
    summary = stats.case_summary(landmarks, value)
    overall = stats.seed_summary(landmarks, value).set_index("configuration")
    configs = _configurations(
        summary["configuration"].tolist(), order, drop=() if include_initial else (stats.INITIAL,)
    )
    if not configs:
        raise ValueError("no configuration to plot")
    cases = sorted(summary["case"].unique())
    case_colours = case_palette(cases)
    # Cases side by side within a configuration's slot so their error bars do not overlap.
    offsets = dict(zip(cases, np.linspace(-0.3, 0.3, len(cases)) if len(cases) > 1 else [0.0], strict=True))
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(WIDTH_IN, 3.6), layout="constrained")
        for x, config in enumerate(configs):
            part = summary[summary["configuration"] == config]
            for row in part.itertuples(index=False):
                spread = getattr(row, seed_col)
                ax.errorbar(
                    x + offsets[row.case], getattr(row, mean_col), yerr=None if np.isnan(spread) else spread,
                    fmt="o", ms=3.5, color=case_colours[row.case], ecolor=case_colours[row.case], elinewidth=0.9,
                    capsize=2, label=f"case {row.case}" if x == 0 else None,
                )  # fmt: skip
            total = overall.loc[config]
            spread = total[seed_col]
            ax.errorbar(
                x, total[mean_col], yerr=None if np.isnan(spread) else spread, fmt="D", ms=6, color="black",
                elinewidth=1.4, capsize=4, zorder=5, label="mean over cases" if x == 0 else None,
            )  # fmt: skip
        n_seeds = sorted({int(n) for n in summary.loc[summary["configuration"].isin(configs), "n_seeds"]})
        ax.set_xticks(range(len(configs)), configs, rotation=20 if len(configs) > 4 else 0)
        ax.set_xlim(-0.6, len(configs) - 0.4)
        ax.set_xlabel("configuration")
        ax.set_ylabel("mean TRE (mm)")
        ax.grid(axis="y", alpha=0.3)
        ax.set_title(
            f"Mean TRE per configuration (seeds per configuration: {', '.join(map(str, n_seeds))})\n"
            "dots: case means \u00b1 std over seeds of the case mean (ddof = 1)\n"
            "diamond: mean over cases \u00b1 std over seeds of the per-seed mean over cases",
            loc="left",
        )
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, ncol=1 if len(cases) <= 12 else 2)
        return save_figure(fig, Path(out) / name)
