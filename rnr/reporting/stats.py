"""Statistics over repeated runs: seed-averaged case summaries, bootstrap intervals and paired tests.

Pure functions on the tidy per-landmark frame (one row per case x configuration x seed x landmark, columns
``case``, ``configuration``, ``seed``, ``landmark``, ``tre_mm`` and optionally ``tre_snapped_mm``, ``dx_mm``,
...; or the exact per-landmark TRE ``tre_exact_mm``). Nothing here reads or writes files, and nothing here
decides how a table shows a result (markers, bold, legends: rnr/reporting/table_marks.py).

Conventions (stated again in the docstrings; the tables' legends, rnr/reporting/table_marks.py, repeat them):

* **Seed averaging.** The unit of a case is the landmark: a landmark's TRE is first averaged over the seeds of
  its configuration, and every per-case quantity (mean, std, median, percentiles, paired differences) is
  computed on those seed-averaged values. The spread over seeds is reported separately as the std (ddof = 1)
  over seeds of the per-seed case mean.
* **std** always uses ``ddof = 1`` (sample std); NaN with fewer than two values.
* **Percentile**: ``numpy.percentile`` with its default ``method="linear"`` (type 7 of Hyndman & Fan).
* **Bootstrap interval over cases** (:func:`mean_over_cases`): ``scipy.stats.bootstrap`` of the mean of the
  case means, BCa first; when BCa cannot be computed (constant case means, too few distinct resamples) the
  percentile interval is used instead, and the method used is recorded per row. One case: no interval (NaN).
* **Paired tests** (:func:`paired_tests`): ``scipy.stats.wilcoxon``, two-sided, ``zero_method="wilcox"``
  (zero differences are dropped before ranking), no continuity correction. Differences are configuration
  minus reference, so a negative median difference means the configuration has the smaller TRE.
* **Holm** step-down correction over the configurations compared with the reference, one family per scope:
  the across-case tests form one family; within each case, that case's per-case tests form one family.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from ..layout import INITIAL

DDOF = 1

KEYS = ("case", "configuration", "seed", "landmark")
DEFAULT_VALUE = "tre_mm"
PERCENTILE = 95.0
ALTERNATIVE = "two-sided"
ZERO_METHOD = "wilcox"
CORRECTION = "holm"
TEST = "wilcoxon signed-rank"
# scipy.stats.wilcoxon's own switch to the normal approximation (its method="auto"); restated so that the
# method used can be recorded per row.
EXACT_MAX_N = 50
PERMUTATION_MAX_N = 13


# -- helpers ----------------------------------------------------------------------------------------------
def column_prefix(value: str) -> str:
    """Column prefix of the summary of ``value``: ``tre_mm`` -> ``tre_``, ``tre_snapped_mm`` -> ``tre_snapped_``."""
    return f"{value.removesuffix('_mm')}_"


def _std(values: np.ndarray) -> float:
    values = np.asarray(values, dtype=np.float64)
    return float(np.std(values, ddof=DDOF)) if len(values) > DDOF else float("nan")


def _order(names: Iterable[str]) -> list[str]:
    """Configurations in order of first appearance (the caller's order), duplicates removed."""
    return list(dict.fromkeys(names))


def _check_landmarks(landmarks: pd.DataFrame, value: str) -> pd.DataFrame:
    """Validate the tidy frame: required columns, no duplicate keys, no NaN values, and the same landmark set
    for every seed of a (case, configuration) - otherwise seed averaging would silently mix landmarks."""
    missing = [c for c in (*KEYS, value) if c not in landmarks.columns]
    if missing:
        raise ValueError(f"landmark frame lacks columns {missing}")
    frame = landmarks[list(KEYS) + [value]]
    dup = frame.duplicated(list(KEYS))
    if dup.any():
        first = frame.loc[dup, list(KEYS)].iloc[0].to_dict()
        raise ValueError(f"{int(dup.sum())} duplicate (case, configuration, seed, landmark) rows, e.g. {first}")
    if frame[value].isna().any():
        bad = frame.loc[frame[value].isna(), list(KEYS)].iloc[0].to_dict()
        raise ValueError(f"{value} has {int(frame[value].isna().sum())} NaN values, e.g. at {bad}")
    # Every landmark of a (case, configuration) must appear in every one of its seeds.
    n_seeds = frame.groupby(["case", "configuration"], sort=False)["seed"].nunique()
    per_landmark = frame.groupby(["case", "configuration", "landmark"], sort=False).size()
    expected = n_seeds.reindex(per_landmark.index.droplevel("landmark")).to_numpy()
    uneven = per_landmark[per_landmark.to_numpy() != expected]
    if not uneven.empty:
        case, config, landmark = uneven.index[0]
        raise ValueError(
            f"the seeds of case {case}, configuration {config!r} have different landmark sets "
            f"(e.g. landmark {landmark} is in {uneven.iloc[0]} of {n_seeds[(case, config)]} seeds)"
        )
    return frame


def seed_averaged(landmarks: pd.DataFrame, value: str = DEFAULT_VALUE) -> pd.DataFrame:
    """Per-landmark ``value`` averaged over seeds.

    Args:
        landmarks: the tidy per-landmark frame (see the module docstring).
        value: the column to average, in mm (default the continuous TRE ``tre_mm``).

    Returns:
        One row per (case, configuration, landmark) with ``value`` = mean over the seeds and ``n_seeds``.
        Configurations keep their order of first appearance, cases and landmarks are sorted.
    """
    frame = _check_landmarks(landmarks, value)
    out = (
        frame.groupby(["case", "configuration", "landmark"], sort=False)
        .agg(**{value: (value, "mean"), "n_seeds": ("seed", "nunique")})
        .reset_index()
    )
    rank = {c: i for i, c in enumerate(_order(frame["configuration"]))}
    out = out.sort_values(
        ["case", "configuration", "landmark"], key=lambda s: s.map(rank) if s.name == "configuration" else s
    )
    return out.reset_index(drop=True)


# -- 1. per case -------------------------------------------------------------------------------------------
def case_summary(landmarks: pd.DataFrame, value: str = DEFAULT_VALUE) -> pd.DataFrame:
    """One row per (case, configuration) summarising the seed-averaged per-landmark ``value``.

    For ``value = "tre_mm"`` the columns are (other values use their own prefix, e.g. ``tre_snapped_``):

    * ``case``, ``configuration``, ``n_seeds``, ``n_landmarks``;
    * ``tre_mean_mm``, ``tre_std_mm``: mean and std (ddof = 1) over the landmarks of the seed-averaged TRE
      ``t_l = mean_s TRE_{l,s}``;
    * ``tre_seed_std_mm``: std (ddof = 1) over seeds of the per-seed case mean ``mean_l TRE_{l,s}``; NaN with
      one seed. It measures how much the case mean moves between repeated runs;
    * ``tre_median_mm``, ``tre_p95_mm``, ``tre_max_mm``: median, 95th percentile (numpy's default linear
      interpolation) and maximum of ``t_l``.

    Since every seed has the same landmarks (checked), ``tre_mean_mm`` also equals the mean over seeds of
    the per-seed case mean.
    """
    frame = _check_landmarks(landmarks, value)
    p = column_prefix(value)
    averaged = seed_averaged(frame, value)
    seed_means = {
        key: part.to_numpy(dtype=np.float64)
        for key, part in frame.groupby(["case", "configuration", "seed"], sort=False)[value]
        .mean()
        .groupby(level=["case", "configuration"], sort=False)
    }
    rows = []
    for (case, config), part in averaged.groupby(["case", "configuration"], sort=False):
        t = part[value].to_numpy(dtype=np.float64)
        per_seed = seed_means[(case, config)]
        rows.append(
            {
                "case": case,
                "configuration": config,
                "n_seeds": int(len(per_seed)),
                "n_landmarks": int(len(t)),
                f"{p}mean_mm": float(np.mean(t)),
                f"{p}std_mm": _std(t),
                f"{p}seed_std_mm": _std(per_seed),
                f"{p}median_mm": float(np.median(t)),
                f"{p}p95_mm": float(np.percentile(t, PERCENTILE)),  # numpy default: method="linear"
                f"{p}max_mm": float(np.max(t)),
            }
        )
    return pd.DataFrame(rows)


def seed_summary(landmarks: pd.DataFrame, value: str = DEFAULT_VALUE) -> pd.DataFrame:
    """Spread over seeds of the dataset mean, one row per configuration.

    For each seed s the dataset mean is ``m_s = mean_c mean_l TRE_{c,l,s}`` (mean over cases of the per-seed
    case mean). Columns (prefix as in :func:`case_summary`): ``configuration``, ``n_seeds``, ``n_cases``,
    ``tre_mean_mm`` (mean over seeds of ``m_s``), ``tre_seed_std_mm`` (std over seeds of ``m_s``, ddof = 1;
    NaN with one seed). Every seed of a configuration must cover the same cases, else ValueError (a missing
    run would otherwise shift one seed's mean).
    """
    frame = _check_landmarks(landmarks, value)
    p = column_prefix(value)
    case_means = frame.groupby(["configuration", "seed", "case"], sort=False)[value].mean().reset_index()
    rows = []
    for config, part in case_means.groupby("configuration", sort=False):
        cases = part.groupby("seed")["case"].apply(frozenset)
        if cases.nunique() > 1:
            raise ValueError(f"the seeds of configuration {config!r} cover different cases: {cases.to_dict()}")
        m = part.groupby("seed")[value].mean().to_numpy(dtype=np.float64)
        rows.append(
            {
                "configuration": config,
                "n_seeds": int(len(m)),
                "n_cases": int(part["case"].nunique()),
                f"{p}mean_mm": float(np.mean(m)),
                f"{p}seed_std_mm": _std(m),
            }
        )
    return pd.DataFrame(rows)


# -- 2. over cases -----------------------------------------------------------------------------------------
def bootstrap_mean_ci(
    values: Sequence[float], n_boot: int = 10000, seed: int = 0, confidence: float = 0.95
) -> tuple[float, float, str]:
    """Bootstrap interval of the mean of ``values`` (N,) with ``scipy.stats.bootstrap``.

    BCa first; if BCa cannot be computed (scipy returns NaN with a DegenerateDataWarning, e.g. for constant
    values) the percentile interval is computed instead. Each attempt uses a fresh
    ``numpy.random.default_rng(seed)``, so the result depends on ``seed`` only, not on earlier calls.

    Returns:
        (low, high, method) with method ``"BCa"``, ``"percentile"``, or ``"none"`` (N < 2: NaN interval, a
        single value has no sampling spread to resample).
    """
    x = np.asarray(values, dtype=np.float64)
    if len(x) < 2:
        return float("nan"), float("nan"), "none"
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            # BCa's degenerate cases are handled by the fallback below; the warning would only repeat it.
            warnings.simplefilter("ignore", sps.DegenerateDataWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            res = sps.bootstrap(
                (x,),
                np.mean,
                n_resamples=n_boot,
                confidence_level=confidence,
                method=method,
                vectorized=True,
                rng=np.random.default_rng(seed),
            )
        low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if np.isfinite(low) and np.isfinite(high):
            return low, high, method
    return float("nan"), float("nan"), "none"


def mean_over_cases(
    summary: pd.DataFrame,
    n_boot: int = 10000,
    seed: int = 0,
    confidence: float = 0.95,
    column: str = "tre_mean_mm",
) -> pd.DataFrame:
    """Mean over cases of the per-case mean, with a bootstrap interval over cases, one row per configuration.

    Args:
        summary: :func:`case_summary`'s frame (one row per case and configuration).
        n_boot: bootstrap resamples; seed: seed of each configuration's generator (the same for every
            configuration, so the result of one configuration does not depend on the others); confidence: level.
        column: the per-case column to average (default ``tre_mean_mm``).

    Returns:
        Columns ``configuration``, ``n_cases``, ``{column}`` (mean of the case values), ``{stem}_case_std_mm``
        (std over cases, ddof = 1), ``{stem}_ci_low_mm``, ``{stem}_ci_high_mm`` (stem = ``column`` without
        ``_mm``), ``ci_method`` (``BCa``, ``percentile`` after a BCa failure, or ``none`` for one case),
        ``confidence``, ``n_boot``, ``boot_seed``. The interval resamples cases (the case is the independent
        unit), not landmarks.
    """
    stem = column.removesuffix("_mm")
    rows = []
    for config, part in summary.groupby("configuration", sort=False):
        x = part[column].to_numpy(dtype=np.float64)
        low, high, method = bootstrap_mean_ci(x, n_boot=n_boot, seed=seed, confidence=confidence)
        rows.append(
            {
                "configuration": config,
                "n_cases": int(len(x)),
                column: float(np.mean(x)),
                f"{stem}_case_std_mm": _std(x),
                f"{stem}_ci_low_mm": low,
                f"{stem}_ci_high_mm": high,
                "ci_method": method,
                "confidence": confidence,
                "n_boot": n_boot,
                "boot_seed": seed,
            }
        )
    return pd.DataFrame(rows)


# -- 3. paired tests ---------------------------------------------------------------------------------------
def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (Holm 1979), in the input order.

    With the m finite p-values sorted ascending p_(1) <= ... <= p_(m):
    ``p~_(i) = min(1, max_{j <= i} (m - j + 1) p_(j))``. Rejecting ``p~ < alpha`` controls the family-wise
    error rate at alpha. NaN entries (tests that could not be made) are not part of the family and stay NaN.
    """
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    m = len(finite)
    if m == 0:
        return out
    order = finite[np.argsort(p[finite], kind="stable")]
    scaled = (m - np.arange(m)) * p[order]
    # The running maximum keeps the adjusted values monotone in the sorted order (the "step-down" part).
    out[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return out


def wilcoxon_method(diff: Sequence[float]) -> str:
    """The p-value method ``scipy.stats.wilcoxon(method="auto")`` picks for the differences ``diff`` (N,).

    ``"exact"`` when N <= 50 with no zero and no tied absolute difference; otherwise ``"permutation"`` (an
    exact enumeration of the 2^N sign flips) when N <= 13; otherwise ``"asymptotic"`` (normal approximation,
    no continuity correction). Stated explicitly so every row of the stats table names its method.
    """
    d = np.asarray(diff, dtype=np.float64)
    if len(d) > EXACT_MAX_N:
        return "asymptotic"
    nonzero = np.abs(d[d != 0])
    if len(nonzero) == len(d) and len(np.unique(nonzero)) == len(nonzero):
        return "exact"
    return "permutation" if len(d) <= PERMUTATION_MAX_N else "asymptotic"


def wilcoxon_test(diff: Sequence[float]) -> dict:
    """Two-sided Wilcoxon signed-rank test of the paired differences ``diff`` (N,) in mm.

    ``scipy.stats.wilcoxon(diff, zero_method="wilcox", alternative="two-sided", method=...)`` with the method
    of :func:`wilcoxon_method`. The statistic is scipy's: min(R+, R-) of the signed ranks of the non-zero
    differences. Degenerate inputs do not raise: N = 0 gives NaN; all differences zero gives p = 1 (no
    evidence of a difference) with statistic NaN and a note.

    Returns:
        dict with ``n_pairs``, ``n_nonzero``, ``median_diff_mm``, ``mean_diff_mm``, ``statistic``,
        ``p_value``, ``method``, ``note``.
    """
    d = np.asarray(diff, dtype=np.float64)
    out = {
        "n_pairs": int(len(d)),
        "n_nonzero": int(np.count_nonzero(d)),
        "median_diff_mm": float(np.median(d)) if len(d) else float("nan"),
        "mean_diff_mm": float(np.mean(d)) if len(d) else float("nan"),
        "statistic": float("nan"),
        "p_value": float("nan"),
        "method": "none",
        "note": "",
    }
    if len(d) == 0:
        out["note"] = "no pairs"
        return out
    if out["n_nonzero"] == 0:
        out.update(p_value=1.0, note="all paired differences are zero: p set to 1, no test run")
        return out
    method = wilcoxon_method(d)
    scipy_method = sps.PermutationMethod() if method == "permutation" else method
    res = sps.wilcoxon(d, zero_method=ZERO_METHOD, alternative=ALTERNATIVE, method=scipy_method)
    out.update(statistic=float(res.statistic), p_value=float(res.pvalue), method=method)
    if out["n_nonzero"] < out["n_pairs"]:
        out["note"] = f"{out['n_pairs'] - out['n_nonzero']} zero differences dropped (zero_method=wilcox)"
    return out


def paired_landmarks(averaged: pd.DataFrame, config: str, reference: str, value: str) -> pd.DataFrame:
    """Paired differences ``diff = t_l(config) - t_l(reference)`` in mm: columns case, landmark, diff.

    ``averaged`` is :func:`seed_averaged`'s frame (TRE already averaged over seeds, column ``value``).

    A case present for both must have the same landmarks in both, else ValueError (the pairing would be
    silently partial). Cases present for only one of the two are left out (reported by the caller).
    """
    a = averaged[averaged["configuration"] == config].set_index(["case", "landmark"])[value]
    b = averaged[averaged["configuration"] == reference].set_index(["case", "landmark"])[value]
    common = sorted(set(a.index.get_level_values(0)) & set(b.index.get_level_values(0)))
    for case in common:
        la, lb = set(a.loc[case].index), set(b.loc[case].index)
        if la != lb:
            raise ValueError(
                f"case {case}: {config!r} and {reference!r} have different landmarks "
                f"({len(la ^ lb)} not in both); cannot pair"
            )
    a = a[a.index.get_level_values(0).isin(common)]
    diff = (a - b.reindex(a.index)).rename("diff").reset_index()
    return diff.sort_values(["case", "landmark"]).reset_index(drop=True)


def paired_tests(
    landmarks: pd.DataFrame,
    reference: str,
    configurations: Sequence[str] | None = None,
    alpha: float = 0.05,
    value: str = DEFAULT_VALUE,
) -> pd.DataFrame:
    """Wilcoxon signed-rank tests of each configuration against ``reference`` (the rows of ``stats.csv``).

    Args:
        landmarks: the tidy per-landmark frame; TRE is averaged over seeds per landmark first.
        reference: the reference configuration (``compare_to``).
        configurations: the configurations compared with it, in table order; default every configuration in
            the frame except the reference and ``initial``. The reference itself is skipped if listed.
        alpha: family-wise error rate for ``significant``.
        value: the per-landmark column tested (default continuous TRE ``tre_mm``).

    Tests (two-sided, ``zero_method="wilcox"``, method per :func:`wilcoxon_method`):

    * ``scope = "case"``: per case, the paired seed-averaged per-landmark differences
      ``d_l = t_l(config) - t_l(reference)`` (N = 300 on DIR-Lab);
    * ``scope = "all"``: the paired case means ``D_c = mean_l t_l(config) - mean_l t_l(reference)`` over
      the cases both have (``case`` is <NA>); fewer than two cases gives NaN with a note.

    Holm correction over the compared configurations, one family per scope and case: the per-case tests of
    one case form a family, the across-case tests another. ``significant = p_holm < alpha``. Effect size:
    ``median_diff_mm`` = median of the paired differences (negative: the configuration has smaller TRE).

    Returns:
        One row per (scope, case, configuration): ``scope``, ``case``, ``configuration``, ``reference``,
        ``value``, ``n_pairs``, ``n_nonzero``, ``median_diff_mm``, ``mean_diff_mm``, ``statistic``,
        ``p_value``, ``p_holm``, ``significant``, ``test``, ``method``, ``zero_method``, ``alternative``,
        ``correction``, ``alpha``, ``n_seeds``, ``n_seeds_reference``, ``note``. Per-case rows come first
        (by case, then configuration order), then the ``all`` rows.
    """
    averaged = seed_averaged(landmarks, value)
    present = _order(averaged["configuration"])
    if reference not in present:
        raise ValueError(f"reference configuration {reference!r} not in the frame ({present})")
    if configurations is None:
        configurations = [c for c in present if c not in (reference, INITIAL)]
    configurations = [c for c in _order(configurations) if c != reference]
    unknown = [c for c in configurations if c not in present]
    if unknown:
        raise ValueError(f"configurations {unknown} not in the frame ({present})")
    seeds = averaged.groupby(["case", "configuration"])["n_seeds"].first()
    ref_cases = set(averaged.loc[averaged["configuration"] == reference, "case"])

    rows = []
    for config in configurations:
        pairs = paired_landmarks(averaged, config, reference, value)
        cfg_cases = set(averaged.loc[averaged["configuration"] == config, "case"])
        for case, part in pairs.groupby("case", sort=True):
            rows.append(
                {
                    "scope": "case",
                    "case": case,
                    "configuration": config,
                    "n_seeds": int(seeds[(case, config)]),
                    "n_seeds_reference": int(seeds[(case, reference)]),
                    **wilcoxon_test(part["diff"].to_numpy()),
                }
            )
        case_diff = pairs.groupby("case", sort=True)["diff"].mean().to_numpy()  # mean of d = D_c
        result = wilcoxon_test(case_diff)
        notes = [result["note"]] if result["note"] else []
        if len(case_diff) < 2:
            result.update(statistic=float("nan"), p_value=float("nan"), method="none")
            notes = [f"{len(case_diff)} paired case(s): no across-case test"]
        only = sorted(cfg_cases ^ ref_cases)
        if only:
            notes.append(f"cases not in both, left out: {only}")
        result["note"] = "; ".join(notes)
        rows.append(
            {"scope": "all", "case": pd.NA, "configuration": config, "n_seeds": pd.NA, "n_seeds_reference": pd.NA}
            | result
        )

    columns = [
        "scope",
        "case",
        "configuration",
        "reference",
        "value",
        "n_pairs",
        "n_nonzero",
        "median_diff_mm",
        "mean_diff_mm",
        "statistic",
        "p_value",
        "p_holm",
        "significant",
        "test",
        "method",
        "zero_method",
        "alternative",
        "correction",
        "alpha",
        "n_seeds",
        "n_seeds_reference",
        "note",
    ]
    if not rows:
        return pd.DataFrame(columns=columns)
    out = pd.DataFrame(rows)
    out["case"] = out["case"].astype("Int64")
    out["n_seeds"] = out["n_seeds"].astype("Int64")
    out["n_seeds_reference"] = out["n_seeds_reference"].astype("Int64")
    out = out.assign(
        reference=reference,
        value=value,
        test=TEST,
        zero_method=ZERO_METHOD,
        alternative=ALTERNATIVE,
        correction=CORRECTION,
        alpha=alpha,
    )
    # One Holm family per (scope, case): the configurations compared in that case, or across cases.
    family = [f"{scope}:{case}" for scope, case in zip(out["scope"], out["case"].astype(object), strict=True)]
    out["p_holm"] = np.nan
    for _, idx in out.groupby(family, sort=False).groups.items():
        out.loc[idx, "p_holm"] = holm(out.loc[idx, "p_value"].to_numpy(dtype=np.float64))
    out["significant"] = (out["p_holm"] < alpha).fillna(False).astype(bool)
    rank = {c: i for i, c in enumerate(configurations)}
    out = out.assign(_s=(out["scope"] == "all").astype(int), _c=out["configuration"].map(rank))
    out = out.sort_values(["_s", "case", "_c"], na_position="last").drop(columns=["_s", "_c"])
    return out[columns].reset_index(drop=True)
