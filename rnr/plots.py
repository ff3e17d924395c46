"""Dataset-level seaborn figures (``rnr figures``) from the tidy frames of tables.py, and the figure writer.

Every figure is written as PNG and PDF. The matplotlib Agg backend is used: no display is ever needed.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a display

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from .io import atomic_path  # noqa: E402
from .layout import INITIAL  # noqa: E402
from .results import configuration_order  # noqa: E402

FORMATS = ("png", "pdf")
DPI = 150


def save_figure(fig: plt.Figure, path: str | Path, formats: Sequence[str] = FORMATS) -> list[Path]:
    """Write ``fig`` as ``path`` with each suffix in ``formats`` (atomically), close it, return the paths."""
    path = Path(path)
    out = []
    for fmt in formats:
        target = path.with_suffix(f".{fmt}")
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format=fmt, dpi=DPI)
        out.append(target)
    plt.close(fig)
    return out


def _palette(configs: Sequence[str]) -> dict[str, tuple]:
    """Stable colours: ``initial`` grey, the registered configurations from a qualitative palette."""
    colours = sns.color_palette("colorblind", max(1, len(configs)))
    return {c: ((0.6, 0.6, 0.6) if c == INITIAL else colours[i]) for i, c in enumerate(configs)}


def tre_distribution(landmarks: pd.DataFrame, out: Path, order: Sequence[str] | None = None) -> list[Path]:
    """Per-landmark TRE per case (x) and configuration (colour): boxes (no fliers), every landmark a dot."""
    configs = configuration_order(landmarks["configuration"].tolist(), order)
    cases = sorted(landmarks["case"].unique())
    fig, ax = plt.subplots(
        figsize=(max(6.0, 1.1 * len(cases) * max(1, len(configs)) ** 0.5 + 2), 4.6), layout="constrained"
    )
    kw = dict(
        data=landmarks,
        x="case",
        y="tre_mm",
        hue="configuration",
        hue_order=configs,
        order=cases,
        palette=_palette(configs),
        ax=ax,
    )
    with warnings.catch_warnings():
        # seaborn 0.13 passes matplotlib 3.11's deprecated ``vert`` to boxplot; nothing to act on here.
        warnings.filterwarnings("ignore", message=".*vert: bool.*")
        sns.boxplot(**kw, showfliers=False, width=0.8, linewidth=0.8, boxprops={"alpha": 0.55})
    sns.stripplot(**kw, dodge=True, size=1.6, alpha=0.45, jitter=0.18, legend=False, edgecolor="none")
    ax.set_xlabel("case")
    ax.set_ylabel("TRE per landmark (mm)")
    ax.set_title("Per-landmark TRE (continuous) by case and configuration")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(title="configuration", fontsize=8, title_fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    return save_figure(fig, out / "tre_distribution")


def tre_mean_per_configuration(summary: pd.DataFrame, out: Path, order: Sequence[str] | None = None) -> list[Path]:
    """Mean TRE per configuration: bar = mean over cases of the per-case means, error bar = std over cases
    (ddof = 1), dots = the per-case means."""
    configs = configuration_order(summary["configuration"].tolist(), order)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(configs) + 1.5), 4.4), layout="constrained")
    kw = dict(
        data=summary,
        x="configuration",
        y="tre_mean_mm",
        order=configs,
        hue="configuration",
        hue_order=configs,
        palette=_palette(configs),
        ax=ax,
        legend=False,
    )
    sns.barplot(**kw, errorbar="sd", capsize=0.2, alpha=0.6, err_kws={"linewidth": 1.0})
    sns.stripplot(**kw, size=5, jitter=0.12, edgecolor="black", linewidth=0.5)
    ax.set_xlabel("configuration")
    ax.set_ylabel("mean TRE of a case (mm)")
    ax.set_title(
        "Mean TRE per configuration\nbar: mean of case means; error bar: std over cases (ddof = 1); dots: cases",
        fontsize=10,
    )
    ax.grid(axis="y", alpha=0.3)
    return save_figure(fig, out / "tre_mean_per_configuration")


def tre_before_after(summary: pd.DataFrame, out: Path, order: Sequence[str] | None = None) -> list[Path]:
    """Mean TRE per case before (``initial``) and after each registration, grouped bars with ± std over
    the case's landmarks (ddof = 1)."""
    configs = configuration_order(summary["configuration"].tolist(), order)
    cases = sorted(summary["case"].unique())
    fig, ax = plt.subplots(figsize=(max(6.0, 0.5 * len(cases) * len(configs) + 2), 4.4), layout="constrained")
    sns.barplot(
        data=summary,
        x="case",
        y="tre_mean_mm",
        hue="configuration",
        hue_order=configs,
        order=cases,
        palette=_palette(configs),
        errorbar=None,
        ax=ax,
    )
    # One bar per (case, configuration): draw each bar's landmark std by hand (seaborn would need raw data).
    for container, config in zip(ax.containers, configs, strict=False):
        part = summary[summary["configuration"] == config].set_index("case")
        for bar, case in zip(container, cases, strict=False):
            if case in part.index:
                ax.errorbar(
                    bar.get_x() + bar.get_width() / 2,
                    part.loc[case, "tre_mean_mm"],
                    yerr=part.loc[case, "tre_std_mm"],
                    color="black",
                    lw=0.8,
                    capsize=2,
                )
    ax.set_xlabel("case")
    ax.set_ylabel("TRE (mm), mean ± std over landmarks")
    ax.set_title(f"TRE per case before ({INITIAL}) and after registration")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(title="configuration", fontsize=8, title_fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    return save_figure(fig, out / "tre_before_after")


def folding_runtime(summary: pd.DataFrame, out: Path, order: Sequence[str] | None = None) -> list[Path]:
    """Folding fraction (%) and registration runtime (s) per configuration (``initial`` left out: it is the
    identity, with no folding and no runtime), dots = cases, bar = mean over cases."""
    palette = _palette(configuration_order(summary["configuration"].tolist(), order))  # same colours as elsewhere
    data = summary[summary["configuration"] != INITIAL]
    if data.empty:
        data = summary
    data = data.assign(folding_percent=100.0 * data["folding_fraction"].astype(float))
    configs = configuration_order(data["configuration"].tolist(), order)
    fig, axes = plt.subplots(1, 2, figsize=(max(7.0, 2.2 * len(configs) + 3), 4.0), layout="constrained")
    for ax, col, label in (
        (axes[0], "folding_percent", "folded T00-mask voxels (%)"),
        (axes[1], "runtime_s", "registration runtime (s)"),
    ):
        kw = dict(
            data=data,
            x="configuration",
            y=col,
            order=configs,
            hue="configuration",
            hue_order=configs,
            palette=palette,
            ax=ax,
            legend=False,
        )
        sns.barplot(**kw, errorbar=None, alpha=0.6)
        sns.stripplot(**kw, size=5, jitter=0.12, edgecolor="black", linewidth=0.5)
        top = float(data[col].max())
        ax.set_ylim(0, top * 1.15 if top > 0 else 1.0)  # never a negative axis for non-negative quantities
        ax.set_ylabel(label)
        ax.set_xlabel("configuration")
        ax.grid(axis="y", alpha=0.3)
    devices = ", ".join(sorted(data["device"].astype(str).unique()))
    axes[0].set_title("Folding: det J <= 0 on every mask voxel", fontsize=10)
    axes[1].set_title(f"Runtime per case (device: {devices})", fontsize=10)
    return save_figure(fig, out / "folding_runtime")


def write_figures(
    summary: pd.DataFrame, landmarks: pd.DataFrame, out_dir: str | Path, order: Sequence[str] | None = None
) -> list[Path]:
    """All dataset figures into ``out_dir`` (PNG + PDF each); returns the written paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    paths += tre_distribution(landmarks, out, order)
    paths += tre_mean_per_configuration(summary, out, order)
    paths += tre_before_after(summary, out, order)
    paths += folding_runtime(summary, out, order)
    return paths
