"""Accuracy curves (rnr/reporting/curves.py): recording does not change the fit (bit for bit on CPU), the last point is
the run's final TRE as `rnr evaluate` scores it, the budget figures on analytic curves, and the convergence
flag of a multi-level log judged on its last level."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from rnr import layout
from rnr.evaluation.convergence import convergence
from rnr.evaluation.evaluate import evaluate_run
from rnr.methods.settings import settings_for_method
from rnr.registration import register_case
from rnr.reporting.curves import CURVE_COLUMNS, budget_frame, run_budget

SMALL = {
    "rnr": {"iterations": 7, "batch_size": 400, "width": 16},
    "idir": {"iterations": 5, "batch_size": 400, "idir_width": 16, "lr": 1e-4},
}


def _state(transform) -> list[torch.Tensor]:
    return [p.detach().clone() for p in transform.network.parameters()]


@pytest.mark.parametrize("method", ["rnr", "idir"])
def test_recording_a_curve_leaves_the_fit_bit_for_bit_the_same(case, mask, method, tmp_path, request):
    if method == "idir":
        # IDIR's multi-threaded CPU reductions differ in the last bit from run to run even without a curve (two
        # plain runs on two threads differ by 1e-9); on one thread it is reproducible, and so the test is exact.
        request.getfixturevalue("one_thread")
    plain = register_case(case, mask, settings_for_method(method, **SMALL[method]), progress=False)
    watched = register_case(
        case, mask, settings_for_method(method, **SMALL[method], curve_every=3), tmp_path / "run", progress=False
    )
    assert plain.curve is None
    # The same final map, to the last bit, and the same loss every iteration.
    assert all(torch.equal(a, b) for a, b in zip(_state(plain.transform), _state(watched.transform), strict=True))
    columns = [c for c in plain.log.columns if c != "elapsed_s"]
    assert plain.log[columns].equals(watched.log[columns])
    np.testing.assert_array_equal(plain.warped_landmarks, watched.warped_landmarks)
    # Points after every 3rd step and after the last; the recording's time is kept apart.
    curve = pd.read_csv(tmp_path / "run" / layout.CURVE_CSV)
    assert list(curve.columns) == list(CURVE_COLUMNS)
    last = SMALL[method]["iterations"]
    assert curve["iteration"].tolist() == [*range(3, last, 3), last]
    assert (curve["record_s"] > 0).all() and watched.record["curve_s"] == pytest.approx(curve["record_s"].sum(), 0.5)
    assert curve["tre_exact_mm"].notna().all()  # the phantom carries its motion
    np.testing.assert_array_equal(curve["loss"], watched.log.set_index("iteration").loc[curve["iteration"], "loss"])
    # The curve changes along the fit (it watches the live map, not a copy taken once).
    assert curve["tre_mm"].nunique() == len(curve)


def test_the_last_point_is_the_final_tre_of_rnr_evaluate(case, mask, converted_case, tmp_path):
    run = tmp_path / "run"
    register_case(case, mask, settings_for_method("rnr", **SMALL["rnr"], curve_every=4), run, progress=False)
    record = evaluate_run(converted_case, run, case.provided_mask_path, figures=False, step_folding=False)
    last = pd.read_csv(run / layout.CURVE_CSV).iloc[-1]
    assert last["iteration"] == SMALL["rnr"]["iterations"]
    assert last["tre_mm"] == pytest.approx(record["tre"]["mean_mm"], abs=1e-9)
    assert last["tre_exact_mm"] == pytest.approx(record["exact"]["tre"]["mean_mm"], abs=1e-9)


def test_a_method_without_a_loop_has_no_curve_setting():
    with pytest.raises(Exception, match="curve_every"):
        settings_for_method("demons", curve_every=5)


def _points(tre: list[float], iterations: int, seconds_per_it: float = 0.5) -> pd.DataFrame:
    its = np.arange(1, len(tre) + 1) * (iterations // len(tre))
    return pd.DataFrame(
        {
            "configuration": "a",
            "case": 1,
            "seed": 3,
            "method": "rnr",
            "iteration": its,
            "iterations": iterations,
            "fraction": its / iterations,
            "elapsed_s": its * seconds_per_it,
            "tre_mm": tre,
            "tre_exact_mm": tre,
            "recorded": True,
        }
    )


def test_budget_figures_of_an_analytic_curve():
    # TRE 10 / k at the k-th of ten points of a 100-iteration run (10, 20, ... iterations, 0.5 s each).
    curve = _points([10.0 / k for k in range(1, 11)], 100)
    row = run_budget(curve, "tre_mm")
    assert row["tre_at_10pct_mm"] == 10.0 and row["tre_at_25pct_mm"] == pytest.approx(10 / 3)  # first >= 25 %
    assert row["tre_at_50pct_mm"] == 2.0 and row["tre_final_mm"] == 1.0 and row["time_final_s"] == 50.0
    # Within 5 % of 1.0: 10 / k <= 1.05 first at k = 10 (10/9 = 1.11 is not).
    assert row["time_within_5pct_s"] == 50.0 and row["iteration_within_5pct"] == 100


def test_budget_table_averages_seeds_then_cases_and_gives_one_point_methods_their_final_values():
    a = pd.concat([_points([4.0, 2.0], 10).assign(case=c, seed=s) for c in (1, 2) for s in (3, 4)])
    one = _points([1.5], 350).assign(configuration="demons", method="demons", recorded=False)
    frame = budget_frame(pd.concat([a, one], ignore_index=True), ["a", "demons"])
    assert frame["configuration"].tolist() == ["a", "demons"]
    a_row, d_row = frame.iloc[0], frame.iloc[1]
    assert a_row["n_cases"] == 2 and a_row["tre_at_50pct_mm"] == 4.0 and a_row["tre_final_mm"] == 2.0
    assert math.isnan(d_row["tre_at_10pct_mm"]) and d_row["tre_final_mm"] == 1.5 and d_row["points"] == 1


def test_a_multi_level_log_is_judged_on_its_last_level():
    # Demons-like: a coarse level whose metric falls from 1 to 0.5 over 240 iterations, then a finer level
    # (another grid, another metric) at 0.3 with batch-like noise only. Judged on everything, the window before
    # the last straddles the level change and the "drop" between levels flags the run; judged on its last
    # level, whose loss only fluctuates, it has converged.
    coarse = np.linspace(1.0, 0.5, 240)
    fine = 0.3 + 0.001 * np.where(np.arange(30) % 2 == 0, 1.0, -1.0)
    log = pd.DataFrame(
        {"iteration": np.arange(1, 271), "loss": np.concatenate([coarse, fine]), "level": [0] * 240 + [1] * 30}
    )
    assert convergence(log.drop(columns="level")).converged is False
    c = convergence(log)
    assert c.converged is True and c.iterations == 30
