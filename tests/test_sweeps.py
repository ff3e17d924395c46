"""Sweeps (rnr/methods/sweeps.py) through the plan, in-process: how a sweep expands into configurations, and every
sweep the plan must refuse before any job runs, with one line naming the sweep."""

from __future__ import annotations

import pytest
from test_plan import plan, refused

from rnr.methods.sweeps import sweep_from_dict, value_text


def test_a_sweep_expands_into_named_labelled_configurations():
    p = plan({"sweeps": {"grad": {"base": "rnr", "vary": {"alpha_grad": [0.0, 0.05, 1.0]}}}})
    # The config's own configurations first, then the sweep's; alpha_grad 1.0 is rnr's own value (the default):
    # that row is the base itself, not a second run of it.
    assert p.names[-2:] == ("rnr_alpha_grad_0", "rnr_alpha_grad_0.05")
    (sweep,) = p.sweeps
    assert sweep.configurations == ("rnr_alpha_grad_0", "rnr_alpha_grad_0.05", "rnr")
    member = p.configuration("rnr_alpha_grad_0.05")
    assert member.label == "RNR alpha_grad=0.05"  # the base's display label, then key=value
    base = dict(p.configuration("rnr").settings)
    assert dict(member.settings) == {**base, "alpha_grad": 0.05}
    assert member.seeds == p.configuration("rnr").seeds
    # Run per case x seed like any other configuration.
    assert "results/phantom/runs/rnr_alpha_grad_0.05/case3/seed3/metrics.json" in p.metrics_files()
    assert sweep_from_dict(sweep.to_dict()) == sweep
    assert p.ablation_files()[0] == "results/phantom/ablation/grad/ablation.csv"


def test_several_keys_give_their_product_and_seeds_follow_the_base():
    p = plan(
        {
            "configurations": {"rnr": {"seeds": [4, 5]}},
            "sweeps": {"size": {"base": "rnr", "vary": {"n_blocks": [5, 10], "width": [32, 64]}}},
        }
    )
    (sweep,) = p.sweeps
    assert [dict(r.values) for r in sweep.rows] == [
        {"n_blocks": 5, "width": 32},
        {"n_blocks": 5, "width": 64},
        {"n_blocks": 10, "width": 32},
        {"n_blocks": 10, "width": 64},
    ]
    assert "rnr_n_blocks_10_width_64" in p.names
    assert p.configuration("rnr_n_blocks_10_width_64").seeds == (4, 5)


def test_a_sweep_switched_off_by_a_later_file_is_not_run():
    p = plan({"sweeps": {"grad": {"base": "rnr", "vary": {"alpha_grad": [0.5]}}}}, {"sweeps": {"grad": False}})
    assert p.sweeps == () and "rnr_alpha_grad_0.5" not in p.names


@pytest.mark.parametrize(
    ("sweep", "fragments"),
    [
        ({"base": "rnr", "vary": {"alpha_gradd": [0.1]}}, ["sweeps.s", "unknown setting 'alpha_gradd'"]),
        ({"base": "rnr", "vary": {"alpha_grad": [-1.0]}}, ["sweeps.s", "alpha_grad", ">= 0"]),
        ({"base": "rnr", "vary": {"n_blocks": [3]}}, ["sweeps.s", "multiple of 5"]),  # with T10..T40
        ({"base": "demons", "vary": {"lr": [0.1]}}, ["sweeps.s", "'lr' belongs to method rnr/idir, not demons"]),
        ({"base": "rnr", "vary": {"alpha_grad": []}}, ["sweeps.s.vary.alpha_grad", "non-empty list"]),
        ({"base": "rnr", "vary": {}}, ["sweeps.s.vary", "setting -> list"]),
        ({"base": "rnr", "vary": {"seeds": [[1]]}}, ["sweeps.s.vary", "'seeds' cannot be swept"]),
        ({"base": "nope", "vary": {"alpha_grad": [0.1]}}, ["sweeps.s", "base 'nope' is not a configuration"]),
        ({"base": "rnr", "vary": {"alpha_grad": [0.1, 0.1]}}, ["sweeps.s", "'rnr_alpha_grad_0.1' is made twice"]),
    ],
)
def test_invalid_sweeps_are_refused_in_one_line(sweep, fragments):
    message = refused({"sweeps": {"s": sweep}})
    for fragment in fragments:
        assert fragment in message, message


def test_a_generated_name_that_clashes_with_a_configuration_is_refused():
    message = refused(
        {
            "configurations": {"rnr_n_blocks_10": {"n_blocks": 15}},
            "sweeps": {"s": {"base": "rnr", "vary": {"n_blocks": [10]}}},
        }
    )
    assert "sweeps.s" in message and "clashes" in message and "rnr_n_blocks_10" in message


def test_a_sweep_needs_base_and_vary():
    message = refused({"sweeps": {"s": {"base": "rnr"}}})
    assert "sweeps" in message and "vary" in message


def test_value_text_reads_as_written():
    assert [value_text(v) for v in (0.05, 1e-05, 3, 1.0, True, "mask/30")] == [
        "0.05",
        "1e-05",
        "3",
        "1",
        "true",
        "mask/30",
    ]


def test_the_value_axis_is_logarithmic_when_the_values_span_decades():
    from rnr.reporting.sweep_plots import value_axis

    assert value_axis([0.01, 0.1, 1.0, 10.0]) == "log"
    assert value_axis([0.0, 0.05, 1.0]) == "symlog"  # 0 stays on the axis
    assert value_axis([5, 10, 15]) == "linear" and value_axis([0.0, 0.05, 0.1]) == "linear"
    assert value_axis([True, False]) == "categorical" and value_axis(["mask/30", 1000]) == "categorical"
