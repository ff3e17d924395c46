"""``rnr ablation`` and ``rnr curves`` on metrics written by real ``rnr evaluate`` runs (affine maps, three
cases, two seeds; tests/evaluation_case.py): the table in four formats against the collected numbers, the
figure, and the budget table with a recorded curve beside a run without one."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from evaluation_case import make_runs

from rnr import cli, layout
from rnr.methods.sweeps import Sweep, SweepRow
from rnr.reporting.results import load_metrics, run_frame

SWEEP = Sweep("scale", "affine_small", ("scale",), (SweepRow("affine_large", {"scale": 0.9}),))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return make_runs(tmp_path_factory.mktemp("ablation"), cases=(1, 2, 3), seeds=[3, 4])


def test_ablation_table_in_four_formats_and_its_figure(runs, tmp_path):
    out = tmp_path / "ablation"
    argv = ["ablation", "--runs-dir", str(runs), "--out", str(out), "--spec", json.dumps(SWEEP.to_dict())]
    assert cli.main([*argv, "--label", "affine_large=Affine, large"]) == 0
    table = pd.read_csv(out / "ablation.csv")
    assert table["configuration"].tolist() == ["affine_small", "affine_large"]  # the base first
    assert table["value"].tolist() == ["base", "scale=0.9"]
    frame = run_frame(load_metrics(runs, ["affine_small", "affine_large"]))
    per_case = frame.groupby(["configuration", "case"])["tre_mean_mm"].mean().groupby("configuration").mean()
    np.testing.assert_allclose(table["tre_mean_mm"], per_case.loc[table["configuration"]].to_numpy())
    assert (table["tre_ci_low_mm"] <= table["tre_mean_mm"]).all() and table["n_cases"].eq(3).all()
    assert table["tested"].eq("tre_mm").all() and table["tre_exact_mean_mm"].isna().all()  # no truth here
    assert np.isnan(table["p_holm"].iloc[0]) and np.isfinite(table["p_holm"].iloc[1])
    assert table["median_diff_mm"].iloc[1] > 0  # the larger affine error is worse than the base
    markdown = (out / "ablation.md").read_text()
    assert "| Affine, large | scale=0.9 |" in markdown and "n/a" in markdown  # the base's own test
    assert "\\begin{tabular}" in (out / "ablation.tex").read_text()
    assert "Affine, large" in (out / "ablation.html").read_text()
    assert (out / "ablation.png").stat().st_size > 10_000 and (out / "ablation.pdf").is_file()


def test_budget_table_reads_curves_and_one_point_runs(runs, tmp_path):
    # A curve for every affine_small run: TRE falling to the run's final TRE (its metrics) over 10 iterations.
    frame = run_frame(load_metrics(runs, ["affine_small"]))
    for run in frame.itertuples():
        steps = np.arange(1, 11)
        curve = pd.DataFrame(
            {
                "iteration": steps,
                "elapsed_s": 0.5 * steps,
                "loss": 1.0 / steps,
                "tre_mm": run.tre_mean_mm * (1 + 1.0 / steps - 0.1),
                "tre_exact_mm": np.nan,
                "record_s": 0.01,
            }
        )
        curve.to_csv(runs / "affine_small" / f"case{run.case}" / f"seed{run.seed}" / layout.CURVE_CSV, index=False)
    out = tmp_path / "curves"
    assert cli.main(["curves", "--runs-dir", str(runs), "--out", str(out)]) == 0
    budget = pd.read_csv(out / "budget.csv").set_index("configuration")
    assert list(budget.index) == ["affine_large", "affine_small"]
    small, large = budget.loc["affine_small"], budget.loc["affine_large"]
    assert small["points"] == 10 and large["points"] == 1
    final = frame.groupby("case")["tre_mean_mm"].mean().mean()
    assert small["tre_final_mm"] == pytest.approx(final) and small["time_final_s"] == 5.0
    # 1 + 1/k - 0.1 <= 1.05 first at k = 7 (1.043); k = 6 gives 1.067.
    assert small["iteration_within_5pct"] == 7 and small["time_within_5pct_s"] == 3.5
    assert np.isnan(large["tre_at_50pct_mm"]) and large["time_final_s"] > 0
    points = pd.read_csv(out / "curve_points.csv")
    assert len(points) == 6 * 10 + 6 and (out / "curves.png").stat().st_size > 10_000
