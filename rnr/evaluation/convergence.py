"""Convergence of one optimisation run, measured on its loss log (``loss.csv``): a pure function of a DataFrame.

Definition (:func:`convergence`). Let N be the number of logged iterations and w = max(1, round(0.1 N)). Take
three windows of w iterations: the first (F), the preceding-to-last (P) and the last (L), and the median
loss in each, m_F, m_P, m_L. Then

* ``drop = m_P - m_L``: how much the loss still fell over the last 10 % of the iterations (> 0: falling);
* ``relative_drop = drop / (m_F - m_L)``: that fall as a fraction of everything the run has gained since its
  first 10 %; read it as "another 10 % of iterations at the current pace would lower the loss by about this
  fraction of what the run achieved";
* ``noise_z = drop / SE(drop)``: the fall against the iteration-to-iteration noise of the mini-batch loss,
  with SE from the median absolute first difference in P and L (a robust noise estimate that a slow trend
  barely touches) and the standard error of a median of w samples (1.2533 sigma / sqrt(w)).

A run is **not converged** when its loss still falls measurably and substantially: ``noise_z > 3`` and
``relative_drop > 0.01`` (or the loss has not fallen at all since the first window yet falls now).

Why this and not a value-relative change or a fitted slope:

* relative to the total decrease, not to the loss value: the losses of this project (1 - NCC plus
  penalties, SimpleITK's mean squared difference for demons) have arbitrary offsets and can approach 0, so a
  change relative to the value says little, while a share of the decrease achieved is scale-free and
  compares methods;
* window medians, not means or least squares: mini-batch losses are noisy with occasional spikes, and the
  median of a window ignores a spike that would tilt a fitted slope;
* the noise test keeps a flat but noisy loss (nothing left to gain, just batch noise) from being flagged by
  chance, while a deterministic log (demons, noise 0) is judged on its trend alone;
* 1 % as the threshold: a loss decaying like exp(-t / tau) passes once tau < N / 4.5, i.e. once about 99 %
  of its total decrease is done by the end (tau = N / 4 gives 1.4 %, tau = N / 3 2.5 %); a 1 / t tail after
  a fast start just passes (0.7 to 0.9 %); a loss still falling steeply (tau comparable to N) gives 5 to 10 %.

**Multi-level methods** (demons; any method fitted coarse to fine) declare their levels in the loss log with a
:data:`LEVEL_COLUMN` column (0 = coarsest). Only the rows of the last level are judged: the loss of a coarser
level is another function (other images, another grid), and the jump at a level change is not progress that
more iterations would have continued. A log without the column is one level.

Runs logged for fewer than :data:`MIN_ITERATIONS` iterations (too few for three windows) are undetermined:
the numbers are NaN and ``converged`` is None.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

WINDOW_FRACTION = 0.1  # each window covers 10 % of the logged iterations
RELATIVE_DROP_THRESHOLD = 0.01  # not converged above 1 % of the decrease so far per 10 % of iterations ...
NOISE_Z_THRESHOLD = 3.0  # ... when the fall also stands 3 standard errors clear of the batch noise
MIN_ITERATIONS = 10  # fewer logged iterations: undetermined
LEVEL_COLUMN = "level"  # a multi-level method's level per row of its loss log; the last level is judged
_MAD_TO_SIGMA = 1.4826  # MAD of a normal sample times this estimates its sigma
_MEDIAN_SE = 1.2533  # standard error of a median of n normal samples: 1.2533 sigma / sqrt(n)


@dataclass(frozen=True)
class Convergence:
    """Convergence figures of one run (see the module docstring for the definition).

    Attributes:
        iterations: logged iterations N (rows of the loss log with a finite loss).
        window: iterations per window, w = max(1, round(0.1 N)).
        loss_first, loss_previous, loss_last: median loss in the first, preceding-to-last and last window
            (units of the loss; dimensionless for this project's losses).
        drop: loss_previous - loss_last (> 0: still falling).
        relative_drop: drop / (loss_first - loss_last), a fraction (0.01 = 1 %); inf when the loss has not
            fallen since the first window but falls now; NaN when undetermined.
        noise_z: drop over its standard error from the batch noise; inf for a noise-free falling log.
        converged: False when noise_z > 3 and relative_drop > 0.01; None when undetermined.
    """

    iterations: int
    window: int
    loss_first: float
    loss_previous: float
    loss_last: float
    drop: float
    relative_drop: float
    noise_z: float
    converged: bool | None

    def to_dict(self, prefix: str = "") -> dict[str, Any]:
        """The fields as a flat dict (keys with ``prefix``), e.g. for a row of ``tre.csv``."""
        return {f"{prefix}{k}": v for k, v in asdict(self).items()}


def _undetermined(n: int) -> Convergence:
    nan = math.nan
    return Convergence(n, 0, nan, nan, nan, nan, nan, nan, None)


def convergence(
    log: pd.DataFrame,
    column: str = "loss",
    window_fraction: float = WINDOW_FRACTION,
    relative_threshold: float = RELATIVE_DROP_THRESHOLD,
    z_threshold: float = NOISE_Z_THRESHOLD,
) -> Convergence:
    """Convergence figures of a loss log (``loss.csv`` as a DataFrame: columns ``iteration``, ``loss``, ...).

    Rows are taken in ``iteration`` order when that column exists, else in row order; rows with a
    non-finite ``column`` are ignored; with a :data:`LEVEL_COLUMN`, only the rows of the last level count.
    Pure: no I/O, the frame is not modified.

    Args:
        log: the loss log, one row per iteration.
        column: the loss column to judge.
        window_fraction: fraction of the iterations per window (0.1: the last 10 % vs the preceding 10 %).
        relative_threshold, z_threshold: the "not converged" thresholds (module docstring).
    Returns:
        :class:`Convergence`.
    Raises:
        KeyError: ``column`` is not in the log.
    """
    if column not in log.columns:
        raise KeyError(f"the loss log has no column {column!r} (columns: {list(log.columns)})")
    frame = log.sort_values("iteration", kind="stable") if "iteration" in log.columns else log
    frame = last_level(frame)
    y = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
    y = y[np.isfinite(y)]
    n = len(y)
    if n < MIN_ITERATIONS:
        return _undetermined(n)
    w = max(1, int(round(window_fraction * n)))
    w = min(w, n // 3)  # three disjoint windows always fit
    first, previous, last = y[:w], y[n - 2 * w : n - w], y[n - w :]
    m_first, m_prev, m_last = (float(np.median(a)) for a in (first, previous, last))
    drop = m_prev - m_last
    gained = m_first - m_last
    if gained > 0:
        relative = drop / gained
    else:
        relative = math.inf if drop > 0 else 0.0
    # Noise from first differences within P and L: a difference of two independent samples has
    # variance 2 sigma^2, and a slow trend adds only its per-iteration step.
    diffs = np.concatenate([np.diff(previous), np.diff(last)])
    sigma = _MAD_TO_SIGMA * float(np.median(np.abs(diffs - np.median(diffs)))) / math.sqrt(2) if len(diffs) else 0.0
    se = _MEDIAN_SE * sigma * math.sqrt(2.0 / w)
    if se > 0:
        z = drop / se
    else:
        z = math.inf if drop > 0 else (-math.inf if drop < 0 else 0.0)
    converged = not (z > z_threshold and relative > relative_threshold)
    return Convergence(n, w, m_first, m_prev, m_last, drop, relative, z, converged)


def last_level(log: pd.DataFrame) -> pd.DataFrame:
    """The rows of the last level of a multi-level log (its :data:`LEVEL_COLUMN` at its largest value); the log
    itself when it has no levels."""
    if LEVEL_COLUMN not in log.columns or log.empty:
        return log
    levels = pd.to_numeric(log[LEVEL_COLUMN], errors="coerce")
    return log[levels == levels.max()]


def describe(c: Convergence) -> str:
    """One line for a figure title or a table note, e.g. ``not converged (last 10 %: fell by 6.1 % of the
    decrease so far)``."""
    if c.converged is None:
        return f"undetermined (fewer than {MIN_ITERATIONS} logged iterations)"
    verdict = "converged" if c.converged else "not converged"
    if math.isinf(c.relative_drop):
        detail = "falling now, after no net decrease since the first 10 %"
    elif c.relative_drop >= 0:
        detail = f"last 10 %: fell by {100 * c.relative_drop:.2g} % of the decrease so far"
    else:
        detail = f"last 10 %: rose by {-100 * c.relative_drop:.2g} % of the decrease so far"
    return f"{verdict} ({detail})"
