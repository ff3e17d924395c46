"""What the tables and figures mark, and the sentences that explain the marks.

Decisions of presentation made from numbers that rnr/reporting/stats.py and rnr/reporting/results.py computed: the
significance marker of a cell from a paired test (``*`` better, ``†`` worse than the reference), the ‡ of a run that had
not converged, bold for the lowest mean of a row, and the legends that say so. Nothing here computes a statistic.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ..layout import INITIAL

MARK_BETTER = "*"
MARK_WORSE = "\u2020"  # dagger
#: Marker of a case x configuration whose run(s) had not converged (rnr/convergence.py).
MARK_NOT_CONVERGED = "\u2021"  # double dagger
LATEX_MARKS = {MARK_BETTER: r"$^{*}$", MARK_WORSE: r"$^{\dagger}$", MARK_NOT_CONVERGED: r"$^{\ddagger}$"}
#: Appended to the heading of the reference column of the paired tests.
REFERENCE_MARK = " (ref.)"
#: What a tested value is called in a legend (the ``value`` column of stats.csv).
VALUE_NAMES = {"tre_mm": "per-landmark TREs", "tre_exact_mm": "per-landmark exact TREs"}


def significance_marker(p_holm: float, median_diff_mm: float, alpha: float = 0.05, latex: bool = False) -> str:
    """Marker of one table cell: ``*`` significantly better (smaller TRE), ``†`` significantly worse, else "".

    Significant means ``p_holm < alpha``; the direction is the sign of the median paired difference
    (configuration - reference): negative is better. A NaN p-value or a zero median difference gives "".
    ``latex=True`` returns ``$^{*}$`` / ``$^{\\dagger}$``.
    """
    if p_holm is None or pd.isna(p_holm) or pd.isna(median_diff_mm) or not p_holm < alpha or median_diff_mm == 0:
        return ""
    mark = MARK_BETTER if median_diff_mm < 0 else MARK_WORSE
    return LATEX_MARKS[mark] if latex else mark


def markers(
    tests: pd.DataFrame | None, value: str | None = None, latex: bool = False
) -> dict[tuple[int | str, str], str]:
    """Markers of rnr.reporting.stats.paired_tests rows, keyed ``(case, configuration)`` and ``("all", configuration)``.

    ``value``: only the rows testing that value (stats.csv's ``value`` column, e.g. ``tre_mm``); None: every
    row (the frame must then test one value). Uses each row's own ``alpha``. Rows without a marker map to "".
    """
    if tests is None or tests.empty:
        return {}
    if value is not None:
        tests = tests[tests["value"] == value]
    elif tests["value"].nunique() > 1:
        raise ValueError(f"the tests cover several values {sorted(tests['value'].unique())}; name the one to mark")
    out = {}
    for row in tests.itertuples(index=False):
        key = ("all" if row.scope == "all" else int(row.case), row.configuration)
        out[key] = significance_marker(row.p_holm, row.median_diff_mm, row.alpha, latex=latex)
    return out


def legend_text(alpha: float = 0.05, reference: str | None = None, value: str = "tre_mm") -> str:
    """One-sentence legend of the markers: the test, the correction, alpha and the marker meanings (plain text;
    the LaTeX renderer translates the symbols)."""
    against = f"against the reference `{reference}`" if reference else "against the reference configuration"
    tested = VALUE_NAMES.get(value, f"`{value}` values")
    return (
        f"{MARK_BETTER} significantly smaller TRE, {MARK_WORSE} significantly larger TRE {against}: two-sided "
        f"Wilcoxon signed-rank test on the paired {tested} averaged over seeds (per case) or on the paired case "
        f"means (mean row), Holm correction over the compared configurations, α = {alpha:g}."
    )


def not_converged_mark(converged: object) -> str:
    """‡ when a cell's runs had not converged (``converged`` is False), else ""."""
    return MARK_NOT_CONVERGED if converged is False else ""


def bold_mask(means: Sequence[float], configs: Sequence[str], decimals: int = 2) -> list[bool]:
    """Bold cells of one row: the lowest mean at the shown ``decimals`` (ties all bold) among the registered
    configurations (never ``initial``), only when at least two are compared."""
    candidates = [i for i, c in enumerate(configs) if c != INITIAL and pd.notna(means[i])]
    if len([c for c in configs if c != INITIAL]) < 2 or not candidates:
        return [False] * len(configs)
    best = min(round(means[i], decimals) for i in candidates)
    return [i in candidates and round(means[i], decimals) == best for i in range(len(configs))]
