"""The house style of every figure, and how figures are saved and measured.

Sizes in inches at the printed size (:data:`PAGES`), text in points (>= :data:`MIN_FONT_PT`), PDFs with
TrueType (Type 42) fonts. Kept apart from the figure builders (plots.py, panels.py, stat_plots.py) so that a
per-run evaluation, which draws slice panels only, does not import seaborn and scipy.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a display

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from .io import atomic_path  # noqa: E402

FORMATS = ("png", "pdf")
DPI = 200
# (width, largest height) in inches. "text": the text block of an A4 thesis page (16 cm wide);
# "landscape": an A4 page turned, 2.5 cm margins (24.7 x 16 cm).
PAGES: dict[str, tuple[float, float]] = {"text": (6.3, 9.0), "landscape": (9.7, 6.3)}
MIN_FONT_PT = 8.0
# Sizes in points at the printed size. Type 42 fonts: the glyphs stay text (searchable, accepted by
# publishers); matplotlib's default Type 3 is rejected by many.
STYLE = {
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "legend.title_fontsize": 8,
    "figure.titlesize": 9,
    "figure.labelsize": 9,
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


@contextmanager
def style() -> Iterator[None]:
    """The figure style (:data:`STYLE`) for the duration of the block."""
    with plt.rc_context(STYLE):
        yield


def styled(builder: Callable[..., plt.Figure]) -> Callable[..., plt.Figure]:
    """Build under :func:`style` and draw once there, so that lazily created artists (tick labels) take
    the style's sizes too."""

    @functools.wraps(builder)
    def wrapper(*args, **kwargs) -> plt.Figure:
        with style():
            fig = builder(*args, **kwargs)
            fig.canvas.draw()
        return fig

    return wrapper


def save_figure(fig: plt.Figure, path: str | Path, formats: Sequence[str] = FORMATS) -> list[Path]:
    """Write ``fig`` as ``path`` with each suffix in ``formats`` (atomically, Type 42 fonts in PDF/PS), close
    it, return the paths. The figure keeps its size: no tight bounding box."""
    path = Path(path)
    out = []
    with style():
        for fmt in formats:
            target = path.with_suffix(f".{fmt}")
            with atomic_path(target) as tmp:
                fig.savefig(tmp, format=fmt, dpi=DPI)
            out.append(target)
    plt.close(fig)
    return out


def drawn_texts(fig: plt.Figure) -> list[Text]:
    """Every Text artist of ``fig`` that shows something: visible, non-empty, in a visible axes."""
    fig.canvas.draw()
    # Tick objects outside the view limits keep stale labels that are never drawn: leave them out.
    hidden = set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            drawn = {id(t) for t in axis._update_ticks()}  # the ticks Axis.draw draws
            for tick in [*axis.majorTicks, *axis.minorTicks]:
                if id(tick) not in drawn:
                    hidden.update((id(tick.label1), id(tick.label2)))
    texts = []
    for t in fig.findobj(Text):
        if not t.get_visible() or not t.get_text().strip() or id(t) in hidden:
            continue
        if t.axes is not None and not t.axes.get_visible():
            continue
        texts.append(t)
    return texts


def figure_metrics(fig: plt.Figure) -> dict[str, float]:
    """Size (in) and smallest font (pt) of a figure, how far its drawn content spills beyond its edges (in; 0
    when everything fits) and how many pairs of drawn texts overlap (0 when every label is readable). Used by
    the tests and to list the figures with their sizes."""
    texts = drawn_texts(fig)
    width, height = (float(v) for v in fig.get_size_inches())
    renderer = fig.canvas.get_renderer()
    box = fig.get_tightbbox(renderer)  # in inches
    spill = max(0.0, -box.x0, -box.y0, box.x1 - width, box.y1 - height)
    boxes = []
    for t in texts:
        b = t.get_window_extent(renderer)
        if b.width > 0 and b.height > 0:
            boxes.append(b.shrunk(0.9, 0.8))  # glyph boxes include some padding
    overlaps = sum(boxes[i].overlaps(boxes[j]) for i in range(len(boxes)) for j in range(i + 1, len(boxes)))
    return {
        "width_in": width,
        "height_in": height,
        "min_font_pt": min((float(t.get_fontsize()) for t in texts), default=math.inf),
        "n_texts": float(len(texts)),
        "spill_in": float(spill),
        "overlapping_texts": float(overlaps),
    }
