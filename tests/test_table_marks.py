"""rnr.reporting.table_marks: the markers, bold cells and legends the tables draw from the paired tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rnr.reporting import stats, table_marks
from rnr.reporting.table_render import tex_text


def _tests() -> pd.DataFrame:
    """Paired tests on two values: 'better' is clearly better on tre_mm, clearly worse on tre_exact_mm."""
    rng = np.random.default_rng(5)
    parts = []
    for case in (1, 2, 3):
        base = rng.gamma(2.0, 0.8, 200)
        for config, shift in (("ref", 0.0), ("better", -0.5)):
            parts.append(
                pd.DataFrame({"case": case, "configuration": config, "seed": 0, "landmark": range(200)}).assign(
                    tre_mm=np.abs(base + shift + rng.normal(0, 0.1, 200)),
                    tre_exact_mm=np.abs(base - shift + rng.normal(0, 0.1, 200)),
                )
            )
    frame = pd.concat(parts, ignore_index=True)
    return pd.concat([stats.paired_tests(frame, "ref", value=v) for v in ("tre_mm", "tre_exact_mm")])


def test_significance_marker():
    assert table_marks.significance_marker(0.01, -0.4) == "*"
    assert table_marks.significance_marker(0.01, 0.4) == "\u2020"
    assert table_marks.significance_marker(0.01, 0.4, latex=True) == r"$^{\dagger}$"
    assert table_marks.significance_marker(0.05, -0.4, alpha=0.05) == ""  # p_holm < alpha, strictly
    assert table_marks.significance_marker(float("nan"), -0.4) == ""
    assert table_marks.significance_marker(0.001, 0.0) == ""


def test_markers_follow_the_tested_value():
    tests = _tests()
    assert table_marks.markers(tests, "tre_mm")[(1, "better")] == "*"
    assert table_marks.markers(tests, "tre_exact_mm")[(1, "better")] == "\u2020"
    assert table_marks.markers(tests, "tre_mm")[("all", "better")] == ""  # three cases: p >= 0.25
    with pytest.raises(ValueError, match="several values"):
        table_marks.markers(tests)
    assert table_marks.markers(None) == {}


def test_legend_names_test_correction_alpha_and_value():
    text = table_marks.legend_text(0.05, reference="ref")
    for word in ("Wilcoxon signed-rank", "Holm", "α = 0.05", "`ref`", "*", "\u2020", "per-landmark TREs"):
        assert word in text
    assert "exact TREs" in table_marks.legend_text(0.05, "ref", "tre_exact_mm")
    assert r"$\alpha$ = 0.01" in tex_text(table_marks.legend_text(0.01)) and r"$^{\dagger}$" in tex_text(text)


def test_bold_is_the_lowest_registered_mean_at_two_decimals():
    configs = ["initial", "a", "b", "c"]
    assert table_marks.bold_mask([0.1, 1.234, 1.231, 2.0], configs) == [False, True, True, False]  # tie at 1.23
    assert table_marks.bold_mask([0.1, 1.0], ["initial", "a"]) == [False, False]  # one registered: none
    assert table_marks.bold_mask([0.1, float("nan"), 2.0], ["initial", "a", "b"]) == [False, False, True]
