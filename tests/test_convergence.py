"""The convergence measure on analytic loss curves: converged decay, steep fall, noisy flat, edge cases."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from rnr.evaluation.convergence import Convergence, convergence


def _log(loss: np.ndarray, **extra) -> pd.DataFrame:
    return pd.DataFrame({"iteration": np.arange(1, len(loss) + 1), "loss": loss, **extra})


def _decay(n: int, tau: float, floor: float = 0.1, amplitude: float = 1.0) -> np.ndarray:
    t = np.arange(1, n + 1)
    return floor + amplitude * np.exp(-t / tau)


def test_converged_exponential_decay():
    c = convergence(_log(_decay(2000, tau=2000 / 10)))
    assert c.converged is True
    assert c.iterations == 2000 and c.window == 200
    # Analytic window medians: exp(-t/tau) is monotonic, so the median is the value at the window's middle.
    t_prev, t_last = 1700.5, 1900.5
    expected = (np.exp(-t_prev / 200) - np.exp(-t_last / 200)) / (np.exp(-100.5 / 200) - np.exp(-t_last / 200))
    assert c.relative_drop == pytest.approx(expected, rel=1e-6)
    assert c.relative_drop < 1e-3 and c.drop > 0


def test_steeply_falling_loss_is_not_converged_even_with_batch_noise():
    rng = np.random.default_rng(1)
    loss = _decay(200, tau=150, amplitude=0.3) + 0.01 * rng.normal(size=200)
    c = convergence(_log(loss))
    assert c.converged is False
    assert c.relative_drop > 0.05 and c.noise_z > 3
    # Noise-free, the same curve is judged on its trend alone.
    c = convergence(_log(_decay(200, tau=150, amplitude=0.3)))
    assert c.converged is False and c.noise_z > 100  # only the curvature of the trend is "noise"


@pytest.mark.parametrize("seed", range(5))
def test_noisy_flat_loss_is_converged(seed):
    rng = np.random.default_rng(seed)
    c = convergence(_log(0.2 + 0.02 * rng.normal(size=1000)))
    assert c.converged is True
    assert abs(c.noise_z) < 3  # whatever the windows' medians do, it is batch noise


def test_threshold_sits_between_tau_n_over_4_and_n_over_5():
    assert convergence(_log(_decay(1000, tau=1000 / 4))).converged is False
    assert convergence(_log(_decay(1000, tau=1000 / 5))).converged is True


def test_spikes_do_not_decide():
    loss = np.full(500, 0.3)
    loss[-10:-5] = 50.0  # a few diverging batches at the very end: the median ignores them
    c = convergence(_log(loss))
    assert c.converged is True and c.drop == 0.0


def test_order_nan_rows_extra_columns_and_undetermined():
    loss = _decay(300, tau=300)
    shuffled = _log(loss, dissimilarity=loss / 2).sample(frac=1.0, random_state=0)
    assert convergence(shuffled) == convergence(_log(loss))
    assert convergence(shuffled, column="dissimilarity").converged is False
    with_nan = _log(np.concatenate([loss, [np.nan, np.inf]]))
    assert convergence(with_nan).iterations == 300
    short = convergence(_log(np.linspace(1, 0, 9)))
    assert short.converged is None and math.isnan(short.relative_drop) and short.iterations == 9
    with pytest.raises(KeyError, match="loss"):
        convergence(pd.DataFrame({"iteration": [1, 2]}))


def test_loss_that_never_fell_but_falls_now():
    loss = np.concatenate([np.linspace(1.0, 2.0, 80), np.linspace(2.0, 1.5, 20)])
    c = convergence(_log(loss))
    assert c.converged is False and math.isinf(c.relative_drop)


def test_to_dict_prefix():
    d = convergence(_log(_decay(100, 10))).to_dict("convergence_")
    assert set(d) == {f"convergence_{k}" for k in Convergence.__dataclass_fields__}
    assert d["convergence_converged"] is True
