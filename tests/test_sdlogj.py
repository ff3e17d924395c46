"""rnr.evaluation.metrics.sdlogj on analytic values."""

from __future__ import annotations

import numpy as np
import pytest

from rnr.evaluation import metrics


def test_constant_det_has_zero_sdlogj():
    assert metrics.sdlogj(np.full((4, 5, 6), 1.7)) == pytest.approx(0.0, abs=1e-15)


def test_two_valued_det():
    # k values a and k values b: log values split half/half, std (ddof = 1) = |ln a - ln b| / 2 * sqrt(2k / (2k - 1)).
    k, a, b = 50, 0.5, 2.0
    dets = np.r_[np.full(k, a), np.full(k, b)]
    expected = abs(np.log(a) - np.log(b)) / 2 * np.sqrt(2 * k / (2 * k - 1))
    assert metrics.sdlogj(dets) == pytest.approx(expected, rel=1e-12)
    assert metrics.sdlogj(np.array([1.0, np.e])) == pytest.approx(np.sqrt(0.5), rel=1e-12)


def test_folded_values_enter_at_the_floor():
    floor = np.log(metrics.SDLOGJ_FLOOR)
    dets = np.array([0.0, -3.0, 1.0, 1.0])  # logs: floor, floor, 0, 0
    assert metrics.sdlogj(dets) == pytest.approx(np.std([floor, floor, 0.0, 0.0], ddof=1), rel=1e-12)


def test_mask_and_errors():
    volume = np.ones((3, 3, 3))
    volume[0] = 0.25  # outside the mask below
    mask = np.zeros_like(volume, dtype=bool)
    mask[1:] = True
    assert metrics.sdlogj(volume, mask) == pytest.approx(0.0, abs=1e-15)
    assert metrics.sdlogj(volume) > 0
    with pytest.raises(ValueError, match="mask shape"):
        metrics.sdlogj(volume, mask[0])
    with pytest.raises(ValueError, match="empty"):
        metrics.sdlogj(volume, np.zeros_like(mask))
    assert np.isnan(metrics.sdlogj(np.array([2.0])))
