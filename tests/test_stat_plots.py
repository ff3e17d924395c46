"""rnr.reporting.stat_plots: the paired-difference and seed-spread figures are real 6.3 in PNG + PDF files."""

from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest

from rnr import figure_style
from rnr.reporting import stat_plots, stats
from rnr.reporting.table_marks import markers


def _frame(cases=(1, 2, 3), seeds=(0, 1, 2)) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    parts = []
    for case in cases:
        base = rng.gamma(2.0, 0.8, 300)
        runs = [("initial", 0, base + 5.0)]
        runs += [("ref", s, base + rng.normal(0, 0.2, 300)) for s in seeds]
        runs += [("better", s, np.abs(base - 0.3 + rng.normal(0, 0.2, 300))) for s in seeds]
        for config, seed, tre in runs:
            parts.append(pd.DataFrame({"case": case, "configuration": config, "seed": seed, "landmark": range(300)})
                         .assign(tre_mm=tre))  # fmt: skip
    return pd.concat(parts, ignore_index=True)


def _check(paths, name):
    assert [p.name for p in paths] == [f"{name}.png", f"{name}.pdf"]
    png, pdf = paths[0].read_bytes(), paths[1].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and pdf[:5] == b"%PDF-"
    assert mpimg.imread(paths[0]).shape[1] == round(stat_plots.WIDTH_IN * figure_style.DPI)  # 6.3 in at DPI
    assert b"/FontFile2" in pdf and b"/Subtype /Type3" not in pdf  # TrueType embedded (fonttype 42)


def test_paired_differences_figure(tmp_path):
    frame = _frame()
    tests = stats.paired_tests(frame, "ref")
    _check(stat_plots.paired_differences(frame, "ref", tmp_path, tests=tests), "paired_differences")
    # Without tests, with initial asked for explicitly: one panel per configuration.
    _check(stat_plots.paired_differences(frame, "ref", tmp_path, ["better", "initial"], name="p2"), "p2")
    with pytest.raises(ValueError, match="at least one other"):
        stat_plots.paired_differences(frame, "ref", tmp_path, ["ref"])


def test_paired_differences_of_the_exact_tre_use_its_own_tests(tmp_path):
    frame = _frame()
    # On the exact positions 'better' is worse than the reference (about +0.3 mm): other tests, other markers.
    frame["tre_exact_mm"] = np.where(frame["configuration"] == "better", frame["tre_mm"] + 0.6, frame["tre_mm"])
    tests = pd.concat([stats.paired_tests(frame, "ref", value=v) for v in ("tre_mm", "tre_exact_mm")])
    assert markers(tests, "tre_exact_mm") != markers(tests, "tre_mm")
    paths = stat_plots.paired_differences(frame, "ref", tmp_path, tests=tests, value="tre_exact_mm", name="exact")
    _check(paths, "exact")


def test_seed_spread_figure(tmp_path):
    _check(stat_plots.tre_seed_spread(_frame(), tmp_path), "tre_seed_spread")
    one_seed = _frame(cases=(1,), seeds=(0,))
    _check(stat_plots.tre_seed_spread(one_seed, tmp_path, include_initial=True, name="one"), "one")
