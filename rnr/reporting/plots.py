"""Dataset-level figures (``rnr figures``) from the tidy frames of tables.py, sized for a printed page.

Every figure fits the text width of a thesis page (:data:`PAGES`: 6.3 in wide, at most 9 in high) or, as an
option, a landscape A4 page (9.7 x 6.3 in), with every text at >= 8 pt at that size, whatever the number of
cases and configurations: more cases or configurations add facets (wrapped into rows), never width. Each
figure answers one question, stated first in its builder's docstring and in :data:`QUESTIONS` (captions
are written from them).

Each figure has a builder ``build_<name>(...) -> Figure`` (nothing written; tests measure it) and a writer
``<name>(..., out) -> [png, pdf]``. PDFs embed TrueType (Type 42) fonts, not Type 3 (publishers reject
those). The matplotlib Agg backend is used: no display is ever needed.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter  # noqa: E402

from ..evaluation.convergence import RELATIVE_DROP_THRESHOLD, convergence  # noqa: E402
from ..figure_style import PAGES, save_figure, styled  # noqa: E402
from ..layout import INITIAL  # noqa: E402
from . import stats  # noqa: E402
from .results import configuration_order  # noqa: E402

NOTE_PT = 8  # notes under a figure (what the marks mean)
_CHAR_IN = 0.5 * 8 / 72  # rough width of one 8-pt character in inches (DejaVu Sans, mostly lower case)

QUESTIONS = {
    "tre_distribution": "How are the per-landmark TREs of each case spread, per configuration?",
    "tre_mean_per_configuration": "Which configuration has the lowest mean TRE over the cases, and how much do "
    "the cases vary?",
    "tre_before_after": "How far does each configuration bring each case's mean TRE down from before registration?",
    "folding_runtime": "Does any configuration fold the map (det J <= 0 in the lung mask), and how long does "
    "each take to register a case?",
    "loss_curves": "Did the optimisation of every case converge, per configuration?",
}


# -- layout helpers --------------------------------------------------------------------------------------------
def _page(page: str) -> tuple[float, float]:
    if page not in PAGES:
        raise ValueError(f"page must be one of {sorted(PAGES)}, got {page!r}")
    return PAGES[page]


def _text_width_in(labels: Sequence[str]) -> float:
    return max((len(str(s)) for s in labels), default=0) * _CHAR_IN


def _grid(n: int, avail_in: float, min_facet_in: float, max_cols: int | None = None) -> tuple[int, int]:
    """(rows, columns) of ``n`` facets at least ``min_facet_in`` wide in ``avail_in`` inches."""
    cols = max(1, min(n, int(avail_in // min_facet_in), max_cols or n))
    return -(-n // cols), cols


def _facets(
    n: int, rows: int, cols: int, width: float, height: float, sharex: bool, sharey: bool
) -> tuple[plt.Figure, list[plt.Axes]]:
    """A rows x cols grid; the facets beyond ``n`` are removed (no empty panels), and every facet that is
    the lowest of its column keeps its x tick labels."""
    fig, axes = plt.subplots(
        rows, cols, figsize=(width, height), sharex=sharex, sharey=sharey, squeeze=False, layout="constrained"
    )
    flat = list(axes.ravel())
    for ax in flat[n:]:
        fig.delaxes(ax)
    used = flat[:n]
    for i, ax in enumerate(used):
        if i + cols >= n:  # nothing below it: the bottom of its column
            ax.xaxis.set_tick_params(labelbottom=True)
    return fig, used


def _is_bottom(i: int, n: int, cols: int) -> bool:
    return i + cols >= n


def _wrap(text: str, width_in: float, pt: float = 9) -> str:
    chars = max(8, int(width_in / (_CHAR_IN * pt / 8)))
    # Names (configurations) are never split: a title may run a little wide, a split name misleads.
    return "\n".join(textwrap.wrap(text, chars, break_on_hyphens=False, break_long_words=False)) or text


def _note(fig: plt.Figure, text: str, width_in: float) -> None:
    """A note under the axes (what marks and colours mean), wrapped to the figure width."""
    fig.get_layout_engine().set(h_pad=0.04)
    fig.supxlabel(_wrap(text, width_in - 0.2, NOTE_PT), fontsize=NOTE_PT, x=0.01, ha="left", linespacing=1.2)


#: The order in which configurations take seaborn's colour-blind palette: its orange (1) and vermillion (3)
#: are hard to tell apart, and its grey (7) is initial's, so the vermillion comes late and the grey never.
CONFIGURATION_COLOURS = (0, 1, 2, 4, 9, 5, 8, 6, 3)
#: Cases are coloured from a sequential map (viridis), never from the configurations' palette.
CASE_COLOURS = "viridis"


def palette(configs: Sequence[str]) -> dict[str, tuple]:
    """One colour per configuration, the same in every figure drawn with the same ``configs`` order:
    ``initial`` grey, the registered configurations from :data:`CONFIGURATION_COLOURS` in order."""
    registered = [c for c in configs if c != INITIAL]
    base = sns.color_palette("colorblind", 10)
    out = {c: base[CONFIGURATION_COLOURS[i % len(CONFIGURATION_COLOURS)]] for i, c in enumerate(registered)}
    out[INITIAL] = (0.55, 0.55, 0.55)
    return out


def case_palette(cases: Sequence[int]) -> dict[int, tuple]:
    """A colour per case from :data:`CASE_COLOURS` (distinct from the configurations' colours)."""
    return dict(zip(cases, sns.color_palette(CASE_COLOURS, len(cases)), strict=True))


_palette = palette


def _nice_log_ticks(lo: float, hi: float, max_ticks: int = 5) -> list[float]:
    """Ticks covering [lo, hi] (lo > 0): 1-2-5 per decade, else 1-3, else 1, else every other decade,
    the densest set with at most ``max_ticks`` ticks inside (labels must not collide at 8 pt)."""
    decades = range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1)
    inside: list[float] = []
    for mantissas, every in (((1, 2, 5), 1), ((1, 3), 1), ((1,), 1), ((1,), 2), ((1,), 3)):
        ticks = [m * 10.0**e for e in decades if e % every == 0 for m in mantissas]
        inside = [t for t in ticks if lo <= t <= hi]
        if len(inside) <= max(2, max_ticks):
            break
    return inside if len(inside) >= 2 else [10.0 ** math.floor(math.log10(lo)), 10.0 ** math.ceil(math.log10(hi))]


def _plain(value: float, _pos=None) -> str:
    return f"{value:g}"


def _log_axis(ax: plt.Axes, axis: str, lo: float, hi: float, length_in: float = 1.5) -> None:
    """A log axis over [lo, hi] with plain tick labels (no 10^k, no minor labels), as many as fit in an axis
    ``length_in`` inches long."""
    target = ax.xaxis if axis == "x" else ax.yaxis
    (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    (ax.set_xlim if axis == "x" else ax.set_ylim)(lo, hi)
    target.set_major_locator(FixedLocator(_nice_log_ticks(lo, hi, int(length_in / 0.4))))
    target.set_major_formatter(FuncFormatter(_plain))
    target.set_minor_formatter(NullFormatter())


def _wants_log(values: np.ndarray, ratio: float = 20.0) -> bool:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return len(v) > 1 and bool(np.all(v > 0)) and float(np.quantile(v, 0.99) / np.quantile(v, 0.01)) > ratio


def _padded_log_range(values: np.ndarray) -> tuple[float, float]:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    return float(v.min()) / 1.25, float(v.max()) * 1.25


def _hbox(ax: plt.Axes, values: np.ndarray, y: float, colour, height: float = 0.6) -> None:
    """A horizontal box (quartiles, median, whiskers to the furthest point within 1.5 IQR) at row ``y``.
    Drawn by hand: matplotlib's boxplot changed its orientation argument across the supported versions."""
    v = np.sort(np.asarray(values, dtype=float))
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return
    q1, med, q3 = np.quantile(v, [0.25, 0.5, 0.75])
    iqr = q3 - q1
    lo = v[v >= q1 - 1.5 * iqr].min()
    hi = v[v <= q3 + 1.5 * iqr].max()
    ax.barh(y, q3 - q1, left=q1, height=height, color=colour, alpha=0.55, edgecolor="black", linewidth=0.6)
    ax.plot([med, med], [y - height / 2, y + height / 2], color="black", lw=1.0)
    ax.hlines(y, lo, q1, color="black", lw=0.6)
    ax.hlines(y, q3, hi, color="black", lw=0.6)


# -- builders ---------------------------------------------------------------------------------------------------
@styled
def build_tre_distribution(
    landmarks: pd.DataFrame, order: Sequence[str] | None = None, page: str = "text"
) -> plt.Figure:
    """How are the per-landmark TREs of each case spread, per configuration?

    One facet per case (wrapped into rows); in each, one row per configuration: a box (quartiles, median,
    whiskers to 1.5 IQR) and every landmark as a dot. TRE (continuous, mm) on a shared axis, logarithmic
    when before- and after-registration errors differ by more than 20 x.

    Args:
        landmarks: tables.landmark_frame (columns case, configuration, tre_mm, ...).
    """
    width, max_h = _page(page)
    configs = configuration_order(landmarks["configuration"].tolist(), order)
    cases = sorted(int(c) for c in landmarks["case"].unique())
    palette = _palette(configs)
    label_w = _text_width_in(configs) + 0.45
    rows, cols = _grid(len(cases), width - label_w, 1.05)
    facet_h = 0.17 * len(configs) + 0.5
    fig, axes = _facets(len(cases), rows, cols, width, min(max_h, rows * facet_h + 0.5), True, True)
    values = landmarks["tre_mm"].to_numpy(dtype=float)
    rng = np.random.default_rng(0)  # fixed jitter: identical figures from identical data
    for i, (ax, case) in enumerate(zip(axes, cases, strict=True)):
        part = landmarks[landmarks["case"] == case]
        for k, config in enumerate(configs):
            v = part.loc[part["configuration"] == config, "tre_mm"].to_numpy(dtype=float)
            _hbox(ax, v, k, palette[config])
            # Every landmark as a dot; rasterised in the PDF (thousands of points), text stays vector.
            ax.scatter(v, k + rng.uniform(-0.22, 0.22, len(v)), s=1.2, color="black", alpha=0.35, lw=0, rasterized=True)
        ax.set_title(f"case {case}")
        ax.grid(axis="x", alpha=0.3)
        if i % cols == 0:
            ax.set_ylabel("configuration")
        if _is_bottom(i, len(cases), cols):
            ax.set_xlabel("TRE (mm)")
    axes[0].set_yticks(range(len(configs)), configs)
    axes[0].set_ylim(len(configs) - 0.5, -0.5)  # first configuration on top
    if _wants_log(values):
        _log_axis(axes[0], "x", *_padded_log_range(values), (width - label_w) / cols)
    else:
        axes[0].set_xlim(0, float(np.nanmax(values)) * 1.05 if np.nanmax(values) > 0 else 1.0)
    _note(fig, "Continuous TRE of every landmark (dots); boxes: quartiles and median, whiskers to 1.5 IQR.", width)
    return fig


@styled
def build_tre_mean_per_configuration(
    summary: pd.DataFrame, order: Sequence[str] | None = None, page: str = "text"
) -> plt.Figure:
    """Which configuration has the lowest mean TRE over the cases, and how much do the cases vary?

    One row per configuration: bar = mean over cases of the per-case mean TRE (mm), error bar = its 95 %
    bootstrap interval over cases (the interval of the tables' mean row, same resamples and seed), dots = the
    per-case means; the value and interval are printed next to each bar.

    Args:
        summary: tables.summary_frame (columns case, configuration, tre_mean_mm, ...).
    """
    width, max_h = _page(page)
    configs = configuration_order(summary["configuration"].tolist(), order)
    palette = _palette(configs)
    height = min(max_h, 0.3 * len(configs) + 1.3)
    fig, ax = plt.subplots(figsize=(min(width, 6.3), height), layout="constrained")
    top = 0.0
    rng = np.random.default_rng(0)
    from .tables import BOOTSTRAP_SEED, N_BOOT  # the tables' resampling: the figure shows their interval

    intervals = stats.mean_over_cases(summary, n_boot=N_BOOT, seed=BOOTSTRAP_SEED).set_index("configuration")
    for k, config in enumerate(configs):
        v = summary.loc[summary["configuration"] == config, "tre_mean_mm"].to_numpy(dtype=float)
        mean = float(np.mean(v))
        low, high = (float(intervals.loc[config, f"tre_mean_ci_{b}_mm"]) for b in ("low", "high"))
        ax.barh(k, mean, height=0.65, color=palette[config], alpha=0.6)
        if np.isfinite(low):
            ax.errorbar(mean, k, xerr=[[mean - low], [high - mean]], color="black", lw=0.9, capsize=3)
        ax.scatter(v, k + rng.uniform(-0.15, 0.15, len(v)), s=12, color=palette[config], edgecolor="black", lw=0.5)
        right = max(float(np.max(v)), high if np.isfinite(high) else mean)
        label = f"{mean:.2f} [{low:.2f}–{high:.2f}]" if np.isfinite(low) else f"{mean:.2f}"
        ax.annotate(label, (right, k), xytext=(4, 0), textcoords="offset points", va="center", fontsize=8)
        top = max(top, right)
    ax.set_yticks(range(len(configs)), configs)
    ax.set_ylim(len(configs) - 0.5, -0.5)
    ax.set_xlim(0, top * 1.3 if top > 0 else 1.0)  # room for the printed values
    ax.set_xlabel("mean TRE of a case (mm)")
    ax.set_ylabel("configuration")
    ax.grid(axis="x", alpha=0.3)
    n_cases = summary["case"].nunique()
    _note(
        fig,
        f"Bar and printed value: mean over {n_cases} case{'s' if n_cases != 1 else ''} of the per-case mean TRE "
        f"with its 95 % bootstrap interval over cases (seed {BOOTSTRAP_SEED}, {N_BOOT} resamples; the interval of "
        "the tables' mean row); dots: the cases.",
        min(width, 6.3),
    )
    return fig


@styled
def build_tre_before_after(summary: pd.DataFrame, order: Sequence[str] | None = None, page: str = "text") -> plt.Figure:
    """How far does each configuration bring each case's mean TRE down from before registration?

    One facet per registered configuration (wrapped into rows); in each, one row per case: grey = before
    registration (``initial``), coloured = after, joined by a line; whiskers = ± std over the case's landmarks
    (ddof = 1), the lower one cut at 0 mm (a TRE is never negative). TRE (mm) on a shared axis, logarithmic
    when before and after differ by more than 20 x.

    Args:
        summary: tables.summary_frame (columns case, configuration, tre_mean_mm, tre_std_mm).
    """
    width, max_h = _page(page)
    configs = configuration_order(summary["configuration"].tolist(), order)
    palette = _palette(configs)
    registered = [c for c in configs if c != INITIAL] or configs  # only initial: show it alone
    cases = sorted(int(c) for c in summary["case"].unique())
    has_initial = INITIAL in configs and registered != [INITIAL]
    label_w = _text_width_in([f"case {c}" for c in cases]) + 0.5
    rows, cols = _grid(len(registered), width - label_w, max(1.2, _text_width_in(registered) + 0.05))
    facet_h = 0.15 * len(cases) + 0.55
    fig, axes = _facets(len(registered), rows, cols, width, min(max_h, rows * facet_h + 0.7), True, True)
    highs = summary["tre_mean_mm"] + summary["tre_std_mm"].fillna(0)
    row_of = {case: k for k, case in enumerate(cases)}

    def series(name: str) -> pd.DataFrame:
        part = summary[summary["configuration"] == name]
        return part.assign(row=part["case"].map(row_of), std=part["tre_std_mm"].fillna(0.0)).sort_values("row")

    before = series(INITIAL) if has_initial else None
    for i, (ax, config) in enumerate(zip(axes, registered, strict=True)):
        after = series(config)
        # One errorbar call per series (not per point): hundreds of containers would make drawing slow.
        for part, name, dy in ((before, INITIAL, -0.17), (after, config, 0.17 if has_initial else 0.0)):
            if part is None or part.empty:
                continue
            ax.errorbar(
                part["tre_mean_mm"].to_numpy(float),
                part["row"].to_numpy(float) + dy,
                # Asymmetric: the lower whisker stops at 0 mm, where a distance ends.
                xerr=np.vstack([np.minimum(part["std"], part["tre_mean_mm"]), part["std"]]).astype(float),
                fmt="o",
                ms=3.5,
                color=palette[name],
                mec="black",
                mew=0.4,
                elinewidth=0.7,
                capsize=1.5,
            )
        if before is not None:
            pairs = before.merge(after, on="case", suffixes=("_b", "_a"))
            segments = [
                [(b, r - 0.17), (a, r + 0.17)]
                for b, a, r in zip(pairs["tre_mean_mm_b"], pairs["tre_mean_mm_a"], pairs["row_a"], strict=True)
            ]
            ax.add_collection(LineCollection(segments, colors="0.3", linewidths=0.6, zorder=0))
        ax.set_title(_wrap(config, (width - label_w) / cols))
        ax.grid(axis="x", alpha=0.3)
        if i % cols == 0:
            ax.set_ylabel("case")
        if _is_bottom(i, len(registered), cols):
            ax.set_xlabel("mean TRE (mm)")
    axes[0].set_yticks(range(len(cases)), [str(c) for c in cases])
    axes[0].set_ylim(len(cases) - 0.5, -0.5)
    if _wants_log(summary["tre_mean_mm"].to_numpy(float)):
        lo = float(np.nanmin(summary["tre_mean_mm"])) / 1.6
        _log_axis(axes[0], "x", lo, float(np.nanmax(highs)) * 1.1, (width - label_w) / cols)
    else:
        axes[0].set_xlim(0, float(np.nanmax(highs)) * 1.05)
    what = "grey: before registration (initial); colour: after; " if has_initial else ""
    _note(
        fig,
        f"{what}dots: mean TRE of the case, whiskers: ± std over its landmarks (ddof = 1), the lower whisker cut at "
        "0 mm (a TRE is never negative).",
        width,
    )
    return fig


@styled
def build_folding_runtime(summary: pd.DataFrame, order: Sequence[str] | None = None, page: str = "text") -> plt.Figure:
    """Does any configuration fold the map (det J <= 0 in the lung mask), and how long does each take to
    register a case?

    One row per registered configuration (``initial``, the identity, has neither). Left: percentage of
    T00 lung-mask voxels with det J <= 0 (bar = mean over cases, dots = cases); dropped, and said so in the
    note, when nothing folds anywhere. Right: registration wall time per case in s (bar = mean, dots = cases),
    logarithmic when runtimes differ by more than 20 x; the devices are named in the note.

    Args:
        summary: tables.summary_frame (columns configuration, folding_fraction, runtime_s, device).
    """
    width, max_h = _page(page)
    all_configs = configuration_order(summary["configuration"].tolist(), order)
    palette = _palette(all_configs)
    data = summary[summary["configuration"] != INITIAL]
    if data.empty:
        data = summary
    data = data.assign(
        folding_percent=100.0 * pd.to_numeric(data["folding_fraction"], errors="coerce"),
        runtime=pd.to_numeric(data["runtime_s"], errors="coerce"),
    )
    configs = configuration_order(data["configuration"].tolist(), order)
    folds = bool((data["folding_percent"] > 0).any())
    timed = bool(data["runtime"].notna().any())
    panels = ([("folding_percent", "folded lung-mask voxels (%)")] if folds else []) + (
        [("runtime", "registration runtime per case (s)")] if timed else []
    )
    notes = []
    if not folds:
        notes.append(
            "No folding: det J > 0 on every T00 lung-mask voxel in every case and configuration "
            "(folding panel left out)."
        )
    if timed:
        devices = ", ".join(sorted(data.loc[data["runtime"].notna(), "device"].astype(str).unique()))
        notes.append(f"Runtime: wall time of the registration, measured on {devices}.")
    else:
        notes.append("No runtime was recorded for any run.")
    notes.append("Bars: mean over cases; dots: cases.")
    fig_w = min(width, 6.3)
    if not panels:  # nothing to draw: the statement alone, no empty axes
        fig = plt.figure(figsize=(fig_w, 0.8), layout="constrained")
        fig.text(0.02, 0.5, _wrap(" ".join(notes), fig_w - 0.3, NOTE_PT), fontsize=NOTE_PT, va="center")
        return fig
    height = min(max_h, 0.3 * len(configs) + 1.5)
    fig, axes = plt.subplots(1, len(panels), figsize=(fig_w, height), sharey=True, squeeze=False, layout="constrained")
    rng = np.random.default_rng(0)
    for ax, (col, label) in zip(axes[0], panels, strict=True):
        for k, config in enumerate(configs):
            v = data.loc[data["configuration"] == config, col].to_numpy(dtype=float)
            v = v[np.isfinite(v)]
            if len(v) == 0:
                continue
            ax.barh(k, float(np.mean(v)), height=0.65, color=palette[config], alpha=0.6)
            ax.scatter(v, k + rng.uniform(-0.15, 0.15, len(v)), s=12, color=palette[config], edgecolor="black", lw=0.5)
        values = data[col].to_numpy(dtype=float)
        if col == "runtime" and _wants_log(values):
            _log_axis(ax, "x", *_padded_log_range(values), (fig_w - _text_width_in(configs)) / len(panels))
        else:
            top = float(np.nanmax(values)) if np.isfinite(values).any() else 0.0
            ax.set_xlim(0, top * 1.15 if top > 0 else 1.0)  # never a negative axis for non-negative quantities
        ax.set_xlabel(label)
        ax.grid(axis="x", alpha=0.3)
    axes[0, 0].set_yticks(range(len(configs)), configs)
    axes[0, 0].set_ylim(len(configs) - 0.5, -0.5)
    axes[0, 0].set_ylabel("configuration")
    _note(fig, " ".join(notes), fig_w)
    return fig


def _smooth(y: np.ndarray) -> np.ndarray:
    """Running median over ~1 % of the iterations (odd window): shows the trend through batch noise."""
    k = max(1, int(round(0.01 * len(y)))) | 1
    if k == 1:
        return y
    return pd.Series(y).rolling(k, center=True, min_periods=1).median().to_numpy()


@styled
def build_loss_curves(
    losses: Mapping[tuple[str, int], pd.DataFrame],
    order: Sequence[str] | None = None,
    page: str = "text",
    column: str = "loss",
) -> plt.Figure:
    """Did the optimisation of every case converge, per configuration?

    One facet per configuration (wrapped into rows), every case a line (colour = case, shared legend): the
    loss against the iteration, as a running median over 1 % of the iterations; logarithmic when it spans
    more than 20 x. Dashed lines: runs not converged by :func:`rnr.evaluation.convergence.convergence` (the loss still
    fell by more than 1 % of its decrease so far over the last 10 % of the iterations); each facet's title
    counts them.

    Args:
        losses: {(configuration, case): loss log (columns iteration, loss, ...)}; ``initial`` has none.
        column: the loss column to draw.
    """
    if not losses:
        raise ValueError("no loss logs to draw")
    width, max_h = _page(page)
    configs = configuration_order([c for c, _ in losses], order)
    if not configs:
        raise ValueError(f"no loss logs of the configurations {list(order or [])}")
    cases = sorted({int(n) for c, n in losses if c in configs})
    colours = case_palette(cases)  # cases, not configurations: a scheme of their own
    rows, cols = _grid(len(configs), width - 0.5, max(1.9, _text_width_in(configs) + 0.15))
    legend_rows = 0 if len(configs) % cols else -(-len(cases) // max(1, min(len(cases), int(width // 1.0))))
    height = min(max_h, rows * 1.75 + 0.55 + 0.2 * legend_rows)
    fig, axes = _facets(len(configs), rows, cols, width, height, False, False)
    for i, (ax, config) in enumerate(zip(axes, configs, strict=True)):
        runs = [(n, losses[(config, n)]) for n in cases if (config, n) in losses]
        ys = []
        not_converged = 0
        for n, log in runs:
            frame = log.sort_values("iteration") if "iteration" in log.columns else log
            x = frame["iteration"].to_numpy(float) if "iteration" in frame.columns else np.arange(1, len(frame) + 1)
            y = _smooth(pd.to_numeric(frame[column], errors="coerce").to_numpy(float))
            step = max(1, len(y) // 1500)  # at most ~1500 points per line: the PDF stays small
            c = convergence(log, column)
            not_converged += c.converged is False
            ax.plot(x[::step], y[::step], color=colours[n], lw=0.9, ls="--" if c.converged is False else "-")
            ys.append(y)
        y = np.concatenate(ys) if ys else np.array([])
        if _wants_log(y):
            _log_axis(ax, "y", *_padded_log_range(y), 1.2)
        status = "all converged" if not_converged == 0 else f"{not_converged} of {len(runs)} not converged"
        ax.set_title(_wrap(config, (width - 0.5) / cols) + "\n" + status)
        ax.grid(alpha=0.3)
        if i % cols == 0:
            ax.set_ylabel(f"{column} (dimensionless)")
        if _is_bottom(i, len(configs), cols):
            ax.set_xlabel("iteration")
    handles = [Line2D([], [], color=colours[n], lw=1.5, label=f"case {n}") for n in cases]
    if len(configs) % cols:
        # A free grid cell: the legend goes there (the cell is the legend, not an empty panel).
        holder = fig.add_subplot(rows, cols, rows * cols)
        holder.axis("off")
        holder.legend(handles=handles, loc="center", ncol=2 if len(cases) > 5 else 1, frameon=False)
    else:
        fig.legend(handles=handles, loc="outside upper center", ncol=min(len(cases), int(width // 1.0)), frameon=False)
    _note(
        fig,
        f"Lines: running median of the {column} over 1 % of the iterations. Dashed: not converged (over the "
        f"last 10 % of the iterations the {column} still fell by more than {100 * RELATIVE_DROP_THRESHOLD:g} % of "
        "its decrease so far, beyond batch noise).",
        width,
    )
    return fig


BUILDERS: dict[str, Callable[..., plt.Figure]] = {
    "tre_distribution": build_tre_distribution,
    "tre_mean_per_configuration": build_tre_mean_per_configuration,
    "tre_before_after": build_tre_before_after,
    "folding_runtime": build_folding_runtime,
    "loss_curves": build_loss_curves,
}


# -- writers (unchanged call signatures; ``page`` added) ----------------------------------------------------------
def tre_distribution(
    landmarks: pd.DataFrame, out: Path, order: Sequence[str] | None = None, page: str = "text"
) -> list[Path]:
    """Write :func:`build_tre_distribution` as ``out/tre_distribution.{png,pdf}``."""
    return save_figure(build_tre_distribution(landmarks, order, page), Path(out) / "tre_distribution")


def tre_mean_per_configuration(
    summary: pd.DataFrame, out: Path, order: Sequence[str] | None = None, page: str = "text"
) -> list[Path]:
    """Write :func:`build_tre_mean_per_configuration` as ``out/tre_mean_per_configuration.{png,pdf}``."""
    return save_figure(build_tre_mean_per_configuration(summary, order, page), Path(out) / "tre_mean_per_configuration")


def tre_before_after(
    summary: pd.DataFrame, out: Path, order: Sequence[str] | None = None, page: str = "text"
) -> list[Path]:
    """Write :func:`build_tre_before_after` as ``out/tre_before_after.{png,pdf}``."""
    return save_figure(build_tre_before_after(summary, order, page), Path(out) / "tre_before_after")


def folding_runtime(
    summary: pd.DataFrame, out: Path, order: Sequence[str] | None = None, page: str = "text"
) -> list[Path]:
    """Write :func:`build_folding_runtime` as ``out/folding_runtime.{png,pdf}``."""
    return save_figure(build_folding_runtime(summary, order, page), Path(out) / "folding_runtime")


def loss_curves(
    losses: Mapping[tuple[str, int], pd.DataFrame], out: Path, order: Sequence[str] | None = None, page: str = "text"
) -> list[Path]:
    """Write :func:`build_loss_curves` as ``out/loss_curves.{png,pdf}``."""
    return save_figure(build_loss_curves(losses, order, page), Path(out) / "loss_curves")


def write_figures(
    summary: pd.DataFrame,
    landmarks: pd.DataFrame,
    out_dir: str | Path,
    order: Sequence[str] | None = None,
    losses: Mapping[tuple[str, int], pd.DataFrame] | None = None,
    page: str = "text",
) -> list[Path]:
    """All dataset figures into ``out_dir`` (PNG + PDF each); ``loss_curves`` only when ``losses`` holds at
    least one log. Returns the written paths."""
    _page(page)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    paths += tre_distribution(landmarks, out, order, page)
    paths += tre_mean_per_configuration(summary, out, order, page)
    paths += tre_before_after(summary, out, order, page)
    paths += folding_runtime(summary, out, order, page)
    if losses:
        paths += loss_curves(losses, out, order, page)
    return paths
