"""rnr.reporting.stats: seed averaging, bootstrap intervals, Wilcoxon tests with Holm correction, table markers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from rnr.reporting import stats

N_LANDMARKS = 300


def _frame(tre: dict[tuple[int, str, int], np.ndarray]) -> pd.DataFrame:
    """Tidy landmark frame from {(case, configuration, seed): per-landmark TRE (M,)}."""
    parts = []
    for (case, config, seed), values in tre.items():
        values = np.asarray(values, dtype=np.float64)
        parts.append(
            pd.DataFrame(
                {
                    "case": case,
                    "configuration": config,
                    "seed": seed,
                    "landmark": np.arange(len(values)),
                    "tre_mm": values,
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def _synthetic(cases=(1, 2, 3, 4, 5, 6), seeds=(0, 1, 2), rng_seed=7) -> pd.DataFrame:
    """Reference, a better configuration (about -0.3 mm), a similar one, and a one-seed ``initial``."""
    rng = np.random.default_rng(rng_seed)
    tre = {}
    for case in cases:
        base = rng.gamma(2.0, 0.8, N_LANDMARKS)
        tre[(case, "initial", 0)] = base + 5.0
        for seed in seeds:
            tre[(case, "ref", seed)] = base + rng.normal(0, 0.2, N_LANDMARKS)
            tre[(case, "better", seed)] = np.abs(base - 0.3 + rng.normal(0, 0.2, N_LANDMARKS))
            tre[(case, "similar", seed)] = base + rng.normal(0, 0.2, N_LANDMARKS)
    return _frame(tre)


# -- seed averaging and the per-case summary ------------------------------------------------------------
def test_case_summary_on_a_hand_built_frame():
    frame = _frame(
        {
            (1, "a", 0): [1.0, 2.0, 3.0],
            (1, "a", 1): [3.0, 4.0, 5.0],  # seed-averaged: [2, 3, 4]; per-seed case means 2 and 4
            (1, "b", 5): [1.0, 1.0, 4.0],
        }
    )
    summary = stats.case_summary(frame).set_index("configuration")
    a = summary.loc["a"]
    assert (a["n_seeds"], a["n_landmarks"]) == (2, 3)
    assert a["tre_mean_mm"] == pytest.approx(3.0)
    assert a["tre_std_mm"] == pytest.approx(1.0)  # std([2, 3, 4], ddof=1)
    assert a["tre_seed_std_mm"] == pytest.approx(np.sqrt(2.0))  # std([2, 4], ddof=1)
    assert a["tre_median_mm"] == pytest.approx(3.0)
    assert a["tre_p95_mm"] == pytest.approx(3.9)  # linear: position 0.95 * 2 = 1.9 -> 3 + 0.9 * (4 - 3)
    assert a["tre_max_mm"] == pytest.approx(4.0)
    b = summary.loc["b"]
    assert b["n_seeds"] == 1 and np.isnan(b["tre_seed_std_mm"])
    assert b["tre_mean_mm"] == pytest.approx(2.0) and b["tre_median_mm"] == pytest.approx(1.0)


def test_seed_averaged_and_other_value_columns():
    frame = _frame({(2, "a", 0): [1.0, 5.0], (2, "a", 1): [3.0, 7.0]})
    frame["tre_snapped_mm"] = frame["tre_mm"] + 1.0
    averaged = stats.seed_averaged(frame)
    assert averaged["tre_mm"].tolist() == [2.0, 6.0] and averaged["n_seeds"].tolist() == [2, 2]
    snapped = stats.case_summary(frame, value="tre_snapped_mm")
    assert snapped.loc[0, "tre_snapped_mean_mm"] == pytest.approx(5.0)
    assert "tre_mean_mm" not in snapped.columns


def test_seed_summary_spread_of_the_dataset_mean():
    # Seed 0: case means 1 and 3 -> dataset mean 2; seed 1: case means 3 and 5 -> 4.
    frame = _frame({(1, "a", 0): [1.0, 1.0], (2, "a", 0): [3.0, 3.0], (1, "a", 1): [3.0, 3.0], (2, "a", 1): [5.0, 5.0]})
    row = stats.seed_summary(frame).iloc[0]
    assert (row["n_seeds"], row["n_cases"]) == (2, 2)
    assert row["tre_mean_mm"] == pytest.approx(3.0) and row["tre_seed_std_mm"] == pytest.approx(np.sqrt(2.0))
    with pytest.raises(ValueError, match="different cases"):
        stats.seed_summary(frame.iloc[:-2])  # seed 1 lacks case 2


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda f: pd.concat([f, f.iloc[:1]]), "duplicate"),
        (lambda f: f.drop(index=4), "different landmark sets"),  # landmark 1 missing in seed 1
        (lambda f: f.assign(tre_mm=f["tre_mm"].where(f.index != 0)), "NaN"),
        (lambda f: f.drop(columns="seed"), "lacks columns"),
    ],
)
def test_invalid_frames_are_rejected(edit, match):
    frame = _frame({(1, "a", 0): [1.0, 2.0, 3.0], (1, "a", 1): [1.0, 2.0, 3.0]})
    with pytest.raises(ValueError, match=match):
        stats.case_summary(edit(frame))


# -- bootstrap over cases ---------------------------------------------------------------------------------
def test_bootstrap_interval_is_reproducible_and_contains_the_mean():
    summary = pd.DataFrame(
        {"case": range(1, 11), "configuration": "a", "tre_mean_mm": [1.1, 1.3, 0.9, 2.0, 1.6, 1.2, 1.0, 1.8, 1.4, 3.1]}
    )
    first = stats.mean_over_cases(summary, n_boot=2000, seed=3)
    again = stats.mean_over_cases(summary, n_boot=2000, seed=3)
    pd.testing.assert_frame_equal(first, again)
    row = first.iloc[0]
    assert row["ci_method"] == "BCa" and row["n_cases"] == 10 and row["boot_seed"] == 3
    assert row["tre_mean_mm"] == pytest.approx(summary["tre_mean_mm"].mean())
    assert row["tre_mean_case_std_mm"] == pytest.approx(summary["tre_mean_mm"].std(ddof=1))
    assert row["tre_mean_ci_low_mm"] < row["tre_mean_mm"] < row["tre_mean_ci_high_mm"]
    # Independently: scipy with the same generator seed gives the same interval.
    ref = sps.bootstrap(
        (summary["tre_mean_mm"].to_numpy(),), np.mean, n_resamples=2000, rng=np.random.default_rng(3)
    ).confidence_interval
    assert (row["tre_mean_ci_low_mm"], row["tre_mean_ci_high_mm"]) == pytest.approx((ref.low, ref.high), rel=1e-12)
    other = stats.mean_over_cases(summary, n_boot=2000, seed=4).iloc[0]
    assert other["tre_mean_ci_low_mm"] != row["tre_mean_ci_low_mm"]


def test_bootstrap_degenerate_inputs():
    constant = pd.DataFrame({"case": [1, 2, 3], "configuration": "c", "tre_mean_mm": [2.0, 2.0, 2.0]})
    one = pd.DataFrame({"case": [1], "configuration": "o", "tre_mean_mm": [2.5]})
    out = stats.mean_over_cases(pd.concat([constant, one]), n_boot=500).set_index("configuration")
    # BCa is undefined for constant data: the percentile interval (here the point itself) is used and named.
    assert out.loc["c", "ci_method"] == "percentile"
    assert out.loc["c", "tre_mean_ci_low_mm"] == out.loc["c", "tre_mean_ci_high_mm"] == 2.0
    assert out.loc["o", "ci_method"] == "none" and np.isnan(out.loc["o", "tre_mean_ci_low_mm"])
    assert np.isnan(out.loc["o", "tre_mean_case_std_mm"]) and out.loc["o", "tre_mean_mm"] == 2.5


# -- Holm ---------------------------------------------------------------------------------------------------
def test_holm_against_a_worked_example():
    # m = 4. Sorted: 0.005, 0.01, 0.03, 0.04 -> times 4, 3, 2, 1: 0.02, 0.03, 0.06, 0.04; running max:
    # 0.02, 0.03, 0.06, 0.06. Back in the input order:
    p = [0.01, 0.04, 0.03, 0.005]
    np.testing.assert_allclose(stats.holm(p), [0.03, 0.06, 0.06, 0.02], rtol=1e-12)
    # Capped at 1; NaN is left out of the family (m = 2 here) and stays NaN; a single test is unchanged.
    np.testing.assert_allclose(stats.holm([0.6, np.nan, 0.2]), [0.6, np.nan, 0.4], rtol=1e-12)
    np.testing.assert_allclose(stats.holm([0.7, 0.8]), [1.0, 1.0])
    np.testing.assert_allclose(stats.holm([0.02]), [0.02])
    assert stats.holm([]).shape == (0,)
    assert np.isnan(stats.holm([np.nan, np.nan])).all()


# -- paired tests -------------------------------------------------------------------------------------------
def _independent_p(frame: pd.DataFrame, config: str, reference: str) -> tuple[dict, float]:
    """p-values recomputed with plain scipy.stats.wilcoxon defaults on seed-averaged pivots."""
    wide = frame.pivot_table(index=["case", "landmark"], columns="configuration", values="tre_mm", aggfunc="mean")
    per_case = {case: sps.wilcoxon(part[config], part[reference]).pvalue for case, part in wide.groupby(level=0)}
    means = wide.groupby(level=0).mean()
    return per_case, sps.wilcoxon(means[config], means[reference]).pvalue


def test_paired_tests_equal_scipy_recomputed_independently():
    frame = _synthetic()
    out = stats.paired_tests(frame, reference="ref", alpha=0.05)
    assert out["configuration"].unique().tolist() == ["better", "similar"]  # initial left out by default
    assert len(out) == 2 * 6 + 2
    for config in ("better", "similar"):
        per_case, across = _independent_p(frame, config, "ref")
        rows = out[out["configuration"] == config]
        cases = rows[rows["scope"] == "case"].set_index("case")
        for case, p in per_case.items():
            assert cases.loc[case, "p_value"] == pytest.approx(p, rel=1e-10, abs=1e-300)
            assert cases.loc[case, "method"] == "asymptotic" and cases.loc[case, "n_pairs"] == N_LANDMARKS
        all_row = rows[rows["scope"] == "all"].iloc[0]
        assert all_row["p_value"] == pytest.approx(across, rel=1e-10)
        assert all_row["method"] == "exact" and all_row["n_pairs"] == 6 and pd.isna(all_row["case"])
    # Holm within each family of two (per case, and across cases), recomputed by hand.
    families = out.groupby(["scope", out["case"].astype(object).fillna("all")])
    assert families.ngroups == 7 and out["p_holm"].notna().all()
    for _, fam in families:
        lo, hi = sorted(fam["p_value"])
        expected = {lo: min(1.0, 2 * lo), hi: min(1.0, max(2 * lo, hi))}
        np.testing.assert_allclose(fam["p_holm"], fam["p_value"].map(expected), rtol=1e-12)
    better = out[(out["configuration"] == "better") & (out["scope"] == "case")]
    assert (better["median_diff_mm"] < -0.1).all() and better["significant"].all()
    assert out["significant"].dtype == bool
    row = out.iloc[0]
    assert (row["test"], row["zero_method"], row["alternative"], row["correction"], row["alpha"]) == (
        "wilcoxon signed-rank",
        "wilcox",
        "two-sided",
        "holm",
        0.05,
    )
    assert (row["n_seeds"], row["n_seeds_reference"]) == (3, 3)


def test_effect_size_is_the_median_of_seed_averaged_differences():
    frame = _frame(
        {
            (1, "ref", 0): [1.0, 2.0, 3.0, 4.0],
            (1, "x", 0): [0.0, 2.0, 2.0, 7.0],
            (1, "x", 1): [2.0, 2.0, 2.0, 7.0],  # seed average [1, 2, 2, 7]; diff [0, 0, -1, 3]
        }
    )
    row = stats.paired_tests(frame, "ref").iloc[0]
    assert row["median_diff_mm"] == pytest.approx(0.0) and row["mean_diff_mm"] == pytest.approx(0.5)
    assert (row["n_pairs"], row["n_nonzero"]) == (4, 2)
    assert "2 zero differences dropped" in row["note"]
    assert row["p_value"] == pytest.approx(sps.wilcoxon([0.0, 0.0, -1.0, 3.0]).pvalue)


def test_wilcoxon_method_matches_scipy_auto():
    rng = np.random.default_rng(0)
    cases = {
        "exact": rng.normal(size=20),
        "permutation": np.array([1.0, -1.0, 2.0, 3.0, -4.0, 5.0]),  # tied |d|, n <= 13
        "asymptotic": np.r_[rng.normal(size=18), 0.0, 0.5, -0.5],  # zero and tie, n > 13
    }
    cases["large"] = rng.normal(size=80)
    for name, d in cases.items():
        result = stats.wilcoxon_test(d)
        assert result["method"] == ("asymptotic" if name == "large" else name)
        assert result["p_value"] == pytest.approx(sps.wilcoxon(d).pvalue, rel=1e-12), name


def test_degenerate_paired_inputs():
    rng = np.random.default_rng(1)
    values = rng.gamma(2.0, 1.0, 20)
    frame = _frame({(1, "ref", 0): values, (1, "same", 0): values, (1, "other", 0): values + rng.normal(0, 1, 20)})
    out = stats.paired_tests(frame, "ref", ["same", "ref", "other"])
    assert out["configuration"].tolist() == ["same", "other", "same", "other"]  # reference skipped
    same = out[(out["configuration"] == "same") & (out["scope"] == "case")].iloc[0]
    assert same["p_value"] == 1.0 and np.isnan(same["statistic"]) and same["method"] == "none"
    assert "all paired differences are zero" in same["note"] and not same["significant"]
    # One case: the across-case tests are NaN with a note, stay out of Holm, and are never significant.
    across = out[out["scope"] == "all"]
    assert across["p_value"].isna().all() and across["p_holm"].isna().all() and not across["significant"].any()
    assert across["note"].str.contains("no across-case test").all()
    assert across["n_pairs"].tolist() == [1, 1]


def test_paired_tests_errors_and_missing_cases():
    frame = _synthetic(cases=(1, 2, 3), seeds=(0,))
    with pytest.raises(ValueError, match="reference configuration 'nope'"):
        stats.paired_tests(frame, "nope")
    with pytest.raises(ValueError, match="not in the frame"):
        stats.paired_tests(frame, "ref", ["better", "nope"])
    short = frame.drop(frame.index[(frame["configuration"] == "better") & (frame["landmark"] == 5)])
    with pytest.raises(ValueError, match="different landmarks"):
        stats.paired_tests(short, "ref", ["better"])
    no_case3 = frame[~((frame["configuration"] == "better") & (frame["case"] == 3))]
    out = stats.paired_tests(no_case3, "ref", ["better"])
    assert out["case"].dropna().tolist() == [1, 2]
    assert "cases not in both, left out: [3]" in out.iloc[-1]["note"] and out.iloc[-1]["n_pairs"] == 2
    with_initial = stats.paired_tests(frame, "ref", ["initial"])
    assert (with_initial["median_diff_mm"] > 4).all()  # initial only when asked; its TRE is 5 mm larger
