"""Per-run figures of ``rnr evaluate``: slice panels before/after registration, det J slices, loss curve.

All slice panels are drawn in millimetres with ``imshow(extent=...)`` and equal aspect, so DIR-Lab's
anisotropic voxels (2.5 mm in z) keep their true proportions, and with z index 0 (the most superior DIR-Lab
slice) at the top of coronal panels.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import TwoSlopeNorm  # noqa: E402

from .plots import save_figure  # noqa: E402
from .warp import take_slice  # noqa: E402

LUNG_WINDOW_HU = (-1000.0, 200.0)
DIFF_WINDOW_HU = 500.0  # difference images are shown in [-500, 500] HU (symmetric, fixed for comparability)
VIEWS = ("coronal", "axial")


@dataclass(frozen=True)
class SliceGeometry:
    """Which slices to show and how to place them in mm.

    Attributes:
        size_xyz, spacing_xyz: the T00 grid.
        index: {"coronal": y index, "axial": z index} (0-based).
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

    def label(self, view: str) -> str:
        if view == "coronal":
            return f"coronal, y = {self.index[view]}"
        return f"axial, z = {self.index[view]}"


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


def _axes_labels(ax: plt.Axes, view: str) -> None:
    ax.set_xlabel("x (mm)")
    ax.set_ylabel("z (mm), superior up" if view == "coronal" else "y (mm)")


def _figure(geom: SliceGeometry, n_cols: int, col_in: float = 2.8) -> tuple[plt.Figure, np.ndarray]:
    heights = [geom.height_mm(v) / geom.width_mm * col_in for v in VIEWS]
    fig, axes = plt.subplots(
        len(VIEWS),
        n_cols,
        figsize=(n_cols * col_in + 0.6, sum(heights) + 2.2),
        gridspec_kw={"height_ratios": heights},
        layout="constrained",
        squeeze=False,
    )
    return fig, axes


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
    """Fixed, moving, fixed - moving, warped moving, fixed - warped for each view (rows: coronal, axial).

    ``fixed``, ``moving`` and ``warped`` map a view name to its 2-D slice in HU (take_slice layout).
    """
    cols = [
        (f"fixed {fixed_name}", fixed, "img"),
        (f"moving {moving_name}", moving, "img"),
        (f"{fixed_name} - {moving_name} (before)", {v: fixed[v] - moving[v] for v in VIEWS}, "diff"),
        (f"warped {moving_name}", warped, "img"),
        (f"{fixed_name} - warped (after)", {v: fixed[v] - warped[v] for v in VIEWS}, "diff"),
    ]
    fig, axes = _figure(geom, len(cols))
    for c, (name, data, kind) in enumerate(cols):
        for r, view in enumerate(VIEWS):
            ax = axes[r, c]
            if kind == "img":
                im = ax.imshow(
                    data[view],
                    cmap="gray",
                    vmin=LUNG_WINDOW_HU[0],
                    vmax=LUNG_WINDOW_HU[1],
                    extent=geom.extent(view),
                    interpolation="nearest",
                )
            else:
                im = ax.imshow(
                    data[view],
                    cmap="RdBu_r",
                    vmin=-DIFF_WINDOW_HU,
                    vmax=DIFF_WINDOW_HU,
                    extent=geom.extent(view),
                    interpolation="nearest",
                )
            ax.set_aspect("equal")
            ax.set_title(f"{name}\n{geom.label(view)}" if r == 0 else geom.label(view), fontsize=9)
            _axes_labels(ax, view)
            ax.tick_params(labelsize=7)
        label = "HU (lung window)" if kind == "img" else "HU difference"
        fig.colorbar(im, ax=list(axes[:, c]), orientation="horizontal", shrink=0.85, label=label)
    fig.suptitle(title)
    return save_figure(fig, path, formats)


def detj_panel(
    path: Path,
    geom: SliceGeometry,
    det: Mapping[str, np.ndarray],
    mask_zyx: np.ndarray | None,
    title: str,
    formats: tuple[str, ...] = ("png",),
) -> list[Path]:
    """det J of phi on the coronal and axial slices: diverging colours centred on 1 (no volume change),
    mask outline in green, det J <= 0 (folding) outlined in black."""
    # A fixed colour range [0, 2] around 1 keeps maps comparable; values beyond saturate (the colour bar
    # shows arrows) and the panel titles give the true min and max.
    norm = TwoSlopeNorm(vcenter=1.0, vmin=0.0, vmax=2.0)
    heights = [geom.height_mm(v) / geom.width_mm * 4.0 for v in VIEWS]
    fig, axes = plt.subplots(1, len(VIEWS), figsize=(9.0, max(heights) + 1.6), layout="constrained")
    for ax, view in zip(axes, VIEWS, strict=True):
        im = ax.imshow(det[view], cmap="RdBu_r", norm=norm, extent=geom.extent(view), interpolation="nearest")
        x0, x1, y1, y0 = geom.extent(view)
        ys = np.linspace(y0, y1, det[view].shape[0] + 1)
        xs = np.linspace(x0, x1, det[view].shape[1] + 1)
        centres = ((xs[:-1] + xs[1:]) / 2, (ys[:-1] + ys[1:]) / 2)
        if mask_zyx is not None:
            m = take_slice(mask_zyx, view, geom.index[view]).astype(float)
            if 0 < m.sum() < m.size:
                ax.contour(*centres, m, levels=[0.5], colors="limegreen", linewidths=0.8)
        folded = (det[view] <= 0).astype(float)
        if 0 < folded.sum() < folded.size:
            ax.contour(*centres, folded, levels=[0.5], colors="black", linewidths=0.8)
        ax.set_aspect("equal")
        ax.set_title(
            f"{geom.label(view)}  (min {np.nanmin(det[view]):.3g}, max {np.nanmax(det[view]):.3g})",
            fontsize=9,
        )
        _axes_labels(ax, view)
    fig.colorbar(im, ax=list(axes), label="det J (1 = volume kept, <= 0 = folding)", shrink=0.8, extend="both")
    fig.suptitle(title)
    return save_figure(fig, path, formats)


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


def loss_curve(path: Path, frame: pd.DataFrame, title: str, formats: tuple[str, ...] = ("png",)) -> list[Path]:
    """The numeric columns of a loss log (e.g. loss, dissimilarity, penalty terms) against the iteration,
    two panels per row; per-term columns (``name_<term>``) are drawn together in one panel with a legend."""
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
        figsize=(5.2 * n_cols, 2.6 * n_rows + 0.6),
        layout="constrained",
        squeeze=False,
    )
    for ax, (name, prefix, cols) in zip(axes.ravel(), groups, strict=False):
        ys = [frame[c].to_numpy(dtype=float) for c in cols]
        for col, y in zip(cols, ys, strict=True):
            ax.plot(x, y, lw=1.0, label=col.removeprefix(prefix) if prefix else None)
        y = np.concatenate(ys)
        if np.all(np.isfinite(y)) and np.all(y > 0) and y.max() / max(y.min(), 1e-300) > 50:
            ax.set_yscale("log")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(xcol or "iteration")
        ax.grid(alpha=0.3)
        if prefix:
            ax.legend(fontsize=7)
    for ax in axes.ravel()[len(groups) :]:
        ax.set_visible(False)
    fig.suptitle(title)
    return save_figure(fig, path, formats)


def take_views(volume_zyx: np.ndarray, geom: SliceGeometry) -> dict[str, np.ndarray]:
    """{view: 2-D slice} of a (nz, ny, nx) volume at the geometry's slice indices."""
    return {v: take_slice(volume_zyx, v, geom.index[v]) for v in VIEWS}
