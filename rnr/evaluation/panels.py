"""Per-run figures of ``rnr evaluate``: slice panels before/after registration, det J slices, loss curve.

All slice panels are drawn in millimetres with ``imshow(extent=...)`` and equal aspect, so DIR-Lab's
anisotropic voxels (2.5 mm in z) keep their true proportions, and with z index 0 (the most superior DIR-Lab
slice) at the top of coronal panels. Slice positions are quoted in mm (voxel index x spacing, the project's
0-based convention), matching the mm axes.

Like the dataset figures (plots.py) every panel fits a 6.3 in text width with text >= 8 pt, and PDFs embed
Type 42 fonts. Each panel has a builder ``build_<name>(...) -> Figure`` and a writer ``<name>(path, ...)``
whose call signature is unchanged.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import TwoSlopeNorm  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from ..figure_style import PAGES, save_figure, styled  # noqa: E402
from .convergence import convergence, describe  # noqa: E402
from .warp import take_slice  # noqa: E402

LUNG_WINDOW_HU = (-1000.0, 200.0)
DIFF_WINDOW_HU = 500.0  # difference images are shown in [-500, 500] HU (symmetric, fixed for comparability)
VIEWS = ("coronal", "axial")
WIDTH_IN = PAGES["text"][0]


@dataclass(frozen=True)
class SliceGeometry:
    """Which slices to show and how to place them in mm.

    Attributes:
        size_xyz, spacing_xyz: the T00 grid (voxels; mm).
        index: {"coronal": y index, "axial": z index} (0-based voxel indices; what the samplers take).
    """

    size_xyz: tuple[int, int, int]
    spacing_xyz: tuple[float, float, float]
    index: Mapping[str, int]

    def extent(self, view: str) -> tuple[float, float, float, float]:
        """imshow extent (left, right, bottom, top) in mm; row 0 at the top (superior / anterior)."""
        (nx, ny, nz), (sx, sy, sz) = self.size_xyz, self.spacing_xyz
        width = nx * sx
        height = nz * sz if view == "coronal" else ny * sy
        # Pixel edges: voxel centre i sits at i * spacing, so the image spans [-s/2, (n - 1/2) s].
        return (
            -sx / 2,
            width - sx / 2,
            height - (sz if view == "coronal" else sy) / 2,
            -(sz if view == "coronal" else sy) / 2,
        )

    def height_mm(self, view: str) -> float:
        _, ny, nz = self.size_xyz
        _, sy, sz = self.spacing_xyz
        return nz * sz if view == "coronal" else ny * sy

    @property
    def width_mm(self) -> float:
        return self.size_xyz[0] * self.spacing_xyz[0]

    def position_mm(self, view: str) -> float:
        """Position of the slice in mm along its normal: y for coronal, z for axial (index x spacing)."""
        return self.index[view] * self.spacing_xyz[1 if view == "coronal" else 2]

    def label(self, view: str) -> str:
        """E.g. ``coronal, y = 120.3 mm`` (the slice's position on the same mm axes as the panels)."""
        axis = "y" if view == "coronal" else "z"
        return f"{view}, {axis} = {self.position_mm(view):.1f} mm"


def slice_geometry(
    size_xyz: tuple[int, int, int],
    spacing_xyz: tuple[float, float, float],
    mask_zyx: np.ndarray | None = None,
) -> SliceGeometry:
    """Slices through the centre of mass of the mask (the lungs), or the volume centre without a mask."""
    nx, ny, nz = size_xyz
    if mask_zyx is not None and np.any(mask_zyx):
        z, y, _ = (float(np.mean(a)) for a in np.nonzero(mask_zyx))
        iy, iz = int(round(y)), int(round(z))
    else:
        iy, iz = ny // 2, nz // 2
    return SliceGeometry(tuple(size_xyz), tuple(spacing_xyz), {"coronal": iy, "axial": iz})  # type: ignore


def _title_chars(width_in: float) -> int:
    """Characters of a 9-pt title that fit ``width_in`` (about 0.6 em per character)."""
    return int(width_in / (0.6 * 9 / 72))


def _suptitle(fig: plt.Figure, title: str, width_in: float) -> None:
    fig.suptitle("\n".join(textwrap.wrap(title, _title_chars(width_in), break_long_words=False)) or title)


# Fixed layout of the step panel, in inches (drawn up to six times per run, so no constrained layout, whose
# passes cost more than the drawing). Sized for 8-pt tick labels of up to 3 digits and two-line labels.
_STEP_LEFT_IN = 0.8  # two-line row label + y tick labels
_STEP_RIGHT_IN = 0.12  # room for the colour bar's last tick label
_STEP_GAP_IN = 0.06  # between image columns and rows (inner tick labels are hidden)
_STEP_TOP_IN = 0.42  # two-line column titles (the suptitle's lines are added)
_STEP_BELOW_IN = 0.48  # x tick labels and the x label under the lower row
_STEP_BAR_IN = 0.1  # colour bar height
_STEP_BAR_BELOW_IN = 0.5  # colour bar ticks and label


def _inner_ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    """Round tick positions in [lo, hi] (mm) away from both ends: neighbouring panels sit close together,
    and labels at their edges would run into each other."""
    margin = 0.08 * (hi - lo)
    return [float(t) for t in MaxNLocator(n).tick_values(lo, hi) if lo + margin <= t <= hi - margin]


@styled
def build_step_panel(
    geom: SliceGeometry,
    fixed: Mapping[str, np.ndarray],
    moving: Mapping[str, np.ndarray],
    warped: Mapping[str, np.ndarray],
    fixed_name: str,
    moving_name: str,
    title: str,
) -> plt.Figure:
    """Does the warped moving image match the fixed one? Rows: coronal and axial slice; columns: fixed,
    moving, warped moving (lung window), then fixed - moving (before) and fixed - warped (after), in HU.

    The title's last line gives each row's slice position in mm.

    ``fixed``, ``moving`` and ``warped`` map a view name to its 2-D slice in HU (take_slice layout);
    ``fixed_name`` / ``moving_name`` are the phases (e.g. T40 / T50 for an intermediate step).
    """
    cols = [
        (f"fixed {fixed_name}", fixed, "img"),
        (f"moving {moving_name}", moving, "img"),
        (f"warped {moving_name}", warped, "img"),
        (f"{fixed_name} − {moving_name}\n(before)", {v: fixed[v] - moving[v] for v in VIEWS}, "diff"),
        (f"{fixed_name} − warped\n(after)", {v: fixed[v] - warped[v] for v in VIEWS}, "diff"),
    ]
    col_in = (WIDTH_IN - _STEP_LEFT_IN - _STEP_RIGHT_IN - (len(cols) - 1) * _STEP_GAP_IN) / len(cols)
    # Each axes box has its image's aspect (mm), so equal aspect fills it exactly.
    heights = [geom.height_mm(v) / geom.width_mm * col_in for v in VIEWS]
    rows = "; ".join(geom.label(v) + (" (superior up)" if v == "coronal" else "") for v in VIEWS)
    title_lines = textwrap.wrap(title, _title_chars(WIDTH_IN), break_long_words=False) or [title]
    title_lines += textwrap.wrap(f"rows: {rows}", _title_chars(WIDTH_IN), break_long_words=False)
    top_in = _STEP_TOP_IN + 0.17 * len(title_lines) + 0.06
    below_rows_in = _STEP_BELOW_IN + _STEP_BAR_IN + _STEP_BAR_BELOW_IN
    fig_h = top_in + sum(heights) + (len(VIEWS) - 1) * _STEP_GAP_IN + below_rows_in
    fig = plt.figure(figsize=(WIDTH_IN, fig_h))

    def box(x_in: float, y_top_in: float, w_in: float, h_in: float) -> list[float]:
        """[left, bottom, width, height] in figure fractions of a box given in inches from the top left."""
        return [x_in / WIDTH_IN, 1 - (y_top_in + h_in) / fig_h, w_in / WIDTH_IN, h_in / fig_h]

    axes = np.empty((len(VIEWS), len(cols)), dtype=object)
    images = {}
    for c, (name, data, kind) in enumerate(cols):
        x_in = _STEP_LEFT_IN + c * (col_in + _STEP_GAP_IN)
        y_in = top_in
        for r, view in enumerate(VIEWS):
            share = {"sharex": axes[0, 0] if (r, c) != (0, 0) else None, "sharey": axes[r, 0] if c else None}
            ax = axes[r, c] = fig.add_axes(box(x_in, y_in, col_in, heights[r]), **share)
            y_in += heights[r] + _STEP_GAP_IN
            if kind == "img":
                norm = {"cmap": "gray", "vmin": LUNG_WINDOW_HU[0], "vmax": LUNG_WINDOW_HU[1]}
            else:
                norm = {"cmap": "RdBu_r", "vmin": -DIFF_WINDOW_HU, "vmax": DIFF_WINDOW_HU}
            im = ax.imshow(data[view], extent=geom.extent(view), interpolation="nearest", **norm)
            images[kind] = im
            ax.set_aspect("equal")
            x0, x1, y_low, y_high = geom.extent(view)
            ax.set_xticks(_inner_ticks(x0, x1))
            ax.set_yticks(_inner_ticks(y_high, y_low))
            if r == 0:
                ax.set_title(name, fontsize=8)
            if c == 0:
                # Short: a coronal row can be little more than half an inch high; the slice positions
                # are in the title.
                ax.set_ylabel(f"{view}\n{'z' if view == 'coronal' else 'y'} (mm)", fontsize=8)
            else:
                ax.tick_params(labelleft=False)
            if r == len(VIEWS) - 1:
                ax.set_xlabel("x (mm)", fontsize=8)
            else:
                ax.tick_params(labelbottom=False)
    n_img = sum(kind == "img" for _, _, kind in cols)
    bar_top = top_in + sum(heights) + (len(VIEWS) - 1) * _STEP_GAP_IN + _STEP_BELOW_IN
    for kind, first, last, label in (
        ("img", 0, n_img - 1, "HU (lung window)"),
        ("diff", n_img, len(cols) - 1, "HU difference"),
    ):
        # The two bars keep apart, so that their end labels do not meet.
        x0 = _STEP_LEFT_IN + first * (col_in + _STEP_GAP_IN) + (0.15 if first else 0.0)
        x1 = _STEP_LEFT_IN + last * (col_in + _STEP_GAP_IN) + col_in - (0.15 if last < len(cols) - 1 else 0.0)
        cax = fig.add_axes(box(x0, bar_top, x1 - x0, _STEP_BAR_IN))
        fig.colorbar(images[kind], cax=cax, orientation="horizontal", label=label)
    fig.suptitle("\n".join(title_lines), y=1 - 0.06 / fig_h, va="top")
    return fig


def step_panel(
    path: Path,
    geom: SliceGeometry,
    fixed: Mapping[str, np.ndarray],
    moving: Mapping[str, np.ndarray],
    warped: Mapping[str, np.ndarray],
    fixed_name: str,
    moving_name: str,
    title: str,
    formats: tuple[str, ...] = ("png",),
) -> list[Path]:
    """Write :func:`build_step_panel` as ``path`` (one file per format)."""
    return save_figure(build_step_panel(geom, fixed, moving, warped, fixed_name, moving_name, title), path, formats)


def _mask_range(values: np.ndarray, mask: np.ndarray | None) -> tuple[str, float, float]:
    """(where, min, max) of det J over this slice's mask voxels; over the whole slice without mask voxels (a
    range on one slice, not over the whole mask: folding.csv has that)."""
    finite = np.isfinite(values)
    if mask is not None and np.any(mask & finite):
        v = values[mask & finite]
        return "mask voxels", float(v.min()), float(v.max())
    v = values[finite]
    if v.size == 0:
        return "no finite value", float("nan"), float("nan")
    return "whole slice (no mask voxel on it)", float(v.min()), float(v.max())


@styled
def build_detj_panel(
    geom: SliceGeometry, det: Mapping[str, np.ndarray], mask_zyx: np.ndarray | None, title: str
) -> plt.Figure:
    """Where does the map compress, expand or fold? det J of phi on the coronal and axial slice: diverging
    colours centred on 1 (no volume change), mask outline in green, det J <= 0 (folding) outlined in black.
    The titles quote min and max of det J over the mask voxels of each slice (the lungs, where the map is
    judged), not over the whole slice.

    ``det`` maps a view name to its 2-D det J slice (take_slice layout); ``mask_zyx`` the bool T00 mask.
    """
    # A fixed colour range [0, 2] around 1 keeps maps comparable; values beyond saturate (the colour bar
    # shows arrows) and the panel titles give the true min and max.
    norm = TwoSlopeNorm(vcenter=1.0, vmin=0.0, vmax=2.0)
    col_in = (WIDTH_IN - 1.0) / len(VIEWS)
    heights = [geom.height_mm(v) / geom.width_mm * col_in for v in VIEWS]
    fig, axes = plt.subplots(1, len(VIEWS), figsize=(WIDTH_IN, max(heights) + 1.3), layout="constrained")
    for ax, view in zip(axes, VIEWS, strict=True):
        im = ax.imshow(det[view], cmap="RdBu_r", norm=norm, extent=geom.extent(view), interpolation="nearest")
        x0, x1, y1, y0 = geom.extent(view)
        ys = np.linspace(y0, y1, det[view].shape[0] + 1)
        xs = np.linspace(x0, x1, det[view].shape[1] + 1)
        centres = ((xs[:-1] + xs[1:]) / 2, (ys[:-1] + ys[1:]) / 2)
        m = None
        if mask_zyx is not None:
            m = take_slice(mask_zyx, view, geom.index[view]).astype(bool)
            if 0 < m.sum() < m.size:
                ax.contour(*centres, m.astype(float), levels=[0.5], colors="limegreen", linewidths=0.8)
        folded = (det[view] <= 0).astype(float)
        if 0 < folded.sum() < folded.size:
            ax.contour(*centres, folded, levels=[0.5], colors="black", linewidths=0.8)
        ax.set_aspect("equal")
        where, lo, hi = _mask_range(np.asarray(det[view], dtype=float), m)
        ax.set_title(f"{geom.label(view)}\ndet J over {where}: min {lo:.3g}, max {hi:.3g}", fontsize=8)
        ax.set_xlabel("x (mm)")
        ax.set_ylabel("z (mm), superior up" if view == "coronal" else "y (mm)")
    fig.colorbar(im, ax=list(axes), label="det J (1 = volume kept, ≤ 0 = folding)", shrink=0.8, extend="both")
    _suptitle(fig, title, WIDTH_IN)
    return fig


def detj_panel(
    path: Path,
    geom: SliceGeometry,
    det: Mapping[str, np.ndarray],
    mask_zyx: np.ndarray | None,
    title: str,
    formats: tuple[str, ...] = ("png",),
) -> list[Path]:
    """Write :func:`build_detj_panel` as ``path`` (one file per format)."""
    return save_figure(build_detj_panel(geom, det, mask_zyx, title), path, formats)


# Bookkeeping columns of a loss log (counters, clocks, schedule), not curves worth a panel.
_NOT_CURVES = {
    "iteration",
    "iter",
    "step",
    "epoch",
    "level",
    "time_s",
    "wall_s",
    "elapsed_s",
    "lr",
    "batch_size",
}


def _loss_panels(curves: list[str]) -> list[tuple[str, str, list[str]]]:
    """Group loss-log columns into panels: ``name_<part>`` columns (e.g. the per-phase terms
    ``dissimilarity_T50_phi1_vs_T40``) share one panel titled ``name per term``; others get one each.
    Returns (title, prefix to strip for legend labels, columns) per panel."""
    panels: list[tuple[str, str, list[str]]] = []
    parts: dict[str, list[str]] = {}
    for col in curves:
        parent = next((p for p in curves if p != col and col.startswith(p + "_")), None)
        if parent is None:
            panels.append((col, "", [col]))
        else:
            parts.setdefault(parent, []).append(col)
    return panels + [(f"{parent} per term", parent + "_", cols) for parent, cols in parts.items()]


def _term_label(name: str) -> str:
    return f"{name} (dimensionless)"


@styled
def build_loss_curve(frame: pd.DataFrame, title: str) -> plt.Figure:
    """Did the optimisation settle? The numeric columns of a loss log (e.g. loss, dissimilarity, penalty
    terms; all dimensionless) against the iteration, two panels per row; per-term columns (``name_<term>``)
    share one panel with a legend. The ``loss`` panel shades the two windows of the convergence measure
    (rnr.evaluation.convergence: last 10 % vs the preceding 10 % of the iterations) and states its verdict.
    """
    xcol = next((c for c in ("iteration", "iter", "step") if c in frame.columns), None)
    x = frame[xcol].to_numpy() if xcol else np.arange(len(frame))
    curves = [
        c
        for c in frame.columns
        if c not in _NOT_CURVES and not c.endswith("_iteration") and pd.api.types.is_numeric_dtype(frame[c])
    ]
    if not curves:
        raise ValueError("the loss log has no numeric column to plot")
    groups = _loss_panels(curves)
    n_cols = 1 if len(groups) == 1 else 2
    n_rows = -(-len(groups) // n_cols)
    fig, axes = plt.subplots(
        n_rows,
        n_cols,
        figsize=(WIDTH_IN, min(PAGES["text"][1], 2.0 * n_rows + 0.7)),
        layout="constrained",
        squeeze=False,
    )
    for ax, (name, prefix, cols) in zip(axes.ravel(), groups, strict=False):
        ys = [frame[c].to_numpy(dtype=float) for c in cols]
        for col, y in zip(cols, ys, strict=True):
            ax.plot(x, y, lw=0.8, label=col.removeprefix(prefix) if prefix else None)
        y = np.concatenate(ys)
        if np.all(np.isfinite(y)) and np.all(y > 0) and y.max() / max(y.min(), 1e-300) > 50:
            ax.set_yscale("log")
        heading = name
        if name == "loss" and not prefix:
            c = convergence(frame)
            if c.converged is not None:  # shade the two windows compared
                n, half = len(x), float(np.median(np.diff(x))) / 2 if len(x) > 1 else 0.5
                for (lo, hi), grey in (((n - 2 * c.window, n - c.window), "0.92"), ((n - c.window, n), "0.82")):
                    ax.axvspan(x[lo] - half, x[hi - 1] + half, color=grey, lw=0, zorder=0)
            heading = f"loss: {describe(c)}"
        ax.set_title(textwrap.fill(heading, int(WIDTH_IN / n_cols / (0.6 * 9 / 72))))
        ax.set_xlabel(xcol or "iteration")
        ax.set_ylabel(_term_label(prefix.rstrip("_") if prefix else name))
        ax.grid(alpha=0.3)
        if prefix:
            # Below the panel (constrained layout makes room), never over the curves.
            ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.3), frameon=False, ncol=2)
    for ax in axes.ravel()[len(groups) :]:
        fig.delaxes(ax)  # no empty panels
    _suptitle(fig, title, WIDTH_IN)
    return fig


def loss_curve(path: Path, frame: pd.DataFrame, title: str, formats: tuple[str, ...] = ("png",)) -> list[Path]:
    """Write :func:`build_loss_curve` as ``path`` (one file per format)."""
    return save_figure(build_loss_curve(frame, title), path, formats)


def take_views(volume_zyx: np.ndarray, geom: SliceGeometry) -> dict[str, np.ndarray]:
    """{view: 2-D slice} of a (nz, ny, nx) volume at the geometry's slice indices."""
    return {v: take_slice(volume_zyx, v, geom.index[v]) for v in VIEWS}
