"""Energy terms (rnr/fitting/losses.py): NCC, gradient penalty (against finite differences), weight penalty."""

from __future__ import annotations

import pytest
import torch

from rnr.fitting import losses
from rnr.fitting.network import ResNetMap
from rnr.methods.reference import reference_passes


def _rand(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def test_ncc_of_a_signal_with_itself_is_one():
    a = _rand(10_000) * 300 - 700  # HU-like
    assert float(losses.ncc(a, a)) == pytest.approx(1.0, abs=1e-12)
    assert float(losses.dissimilarity(a, a)) == pytest.approx(0.0, abs=1e-12)
    assert float(losses.ncc(a, -a)) == pytest.approx(-1.0, abs=1e-12)


# Invariant up to the eps in the denominator (relative effect eps / (std a * std b), here <= 1e-7).
@pytest.mark.parametrize("scale, offset", [(2.5, 100.0), (0.1, -1000.0), (40.0, 0.0)])
def test_ncc_is_invariant_to_affine_intensity_changes(scale, offset):
    a = _rand(5000, seed=1)
    b = 0.6 * a + 0.8 * _rand(5000, seed=2)
    base = float(losses.ncc(a, b))
    assert 0.4 < base < 0.9  # partially correlated: the check is not trivially 1
    assert float(losses.ncc(scale * a + offset, b)) == pytest.approx(base, rel=1e-6)
    assert float(losses.ncc(a, scale * b + offset)) == pytest.approx(base, rel=1e-6)
    assert float(losses.ncc(a, a * scale + offset)) == pytest.approx(1.0, abs=1e-6)


def test_ncc_matches_the_formula_and_is_global_over_the_last_axis():
    a = _rand(3, 400, seed=3)
    b = _rand(3, 400, seed=4) + a
    got = losses.ncc(a, b)
    assert got.shape == (3,)
    for k in range(3):
        x, y = a[k], b[k]
        cov = ((x - x.mean()) * (y - y.mean())).mean()
        expected = cov / (x.std(unbiased=False) * y.std(unbiased=False) + losses.NCC_EPS)
        assert float(got[k]) == pytest.approx(float(expected), rel=1e-12)


def test_ncc_of_a_constant_is_zero_not_nan():
    a = torch.full((100,), -1000.0)
    assert float(losses.ncc(a, _rand(100, dtype=torch.float32))) == 0.0


def test_weight_penalty_equals_hand_computation():
    w1 = torch.tensor([[1.0, -2.0], [0.0, 3.0]])  # squares 1 + 4 + 0 + 9 = 14, 4 entries
    w2 = torch.tensor([[0.5, 0.5, 0.5]])  # 0.75, 3 entries
    assert float(losses.weight_penalty([w1, w2])) == pytest.approx((14 + 0.75) / 7)


def test_weight_penalty_of_the_network_counts_weights_not_biases_and_shared_once():
    model = ResNetMap(5, 10, seed=1)
    mats = model.weight_matrices()
    assert len(mats) == 15
    expected = sum(float((w.detach() ** 2).sum()) for w in mats) / (5 * (30 + 100 + 30))
    assert float(losses.weight_penalty(mats).detach()) == pytest.approx(expected, rel=1e-6)
    shared = ResNetMap(5, 10, shared_weights=True, seed=1)
    assert len(shared.weight_matrices()) == 3
    b = shared.blocks[0]
    hand = (b.W1.square().sum() + b.W2.square().sum() + b.W3.square().sum()).detach() / 160
    got = float(losses.weight_penalty(shared.weight_matrices()).detach())
    assert got == pytest.approx(float(hand), rel=1e-6)


@pytest.mark.parametrize("shared", [False, True])
def test_gradient_penalty_equals_finite_differences(shared):
    """P = (1/(|B| N)) sum_n sum_b ||d/dx F_n(phi_{n-1}(x_b))||_F^2, derivatives w.r.t. the ORIGINAL x."""
    model = ResNetMap(4, 12, shared, seed=11, dtype=torch.float64)
    with torch.no_grad():
        for block in model.blocks:  # residuals of order 0.1-1, so the chain through earlier blocks matters
            block.W3.mul_(300)
    x = torch.rand(64, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2 - 1
    h = 1e-6

    def residuals(points: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.stack(model.trajectory(points)[1])  # (N, M, 3): F_n(phi_{n-1}(x))

    columns = []
    for j in range(3):
        e = torch.zeros(3, dtype=torch.float64)
        e[j] = h
        columns.append((residuals(x + e) - residuals(x - e)) / (2 * h))
    fd_jac = torch.stack(columns, dim=-1)  # (N, M, 3, 3), [..., i, j] = dF_i / dx_j
    fd_penalty = fd_jac.square().sum() / (4 * 64)

    jac = reference_passes(model, x)[1].detach()
    torch.testing.assert_close(jac, fd_jac, rtol=1e-6, atol=1e-7)
    assert float(losses.gradient_penalty(jac)) == pytest.approx(float(fd_penalty), rel=1e-7)
    sq = model.jet(x)[1].detach()
    assert float(losses.gradient_penalty_from_sums(sq, 64)) == pytest.approx(float(fd_penalty), rel=1e-7)
    # Not the Jacobian w.r.t. phi_{n-1} (the chain through earlier blocks is part of the definition).
    local = []
    with torch.no_grad():
        phis, _ = model.trajectory(x)
    for n in range(1, 5):
        z = phis[n - 1].clone().requires_grad_(True)
        f = model.block(n)(z)
        local.append(
            torch.stack([torch.autograd.grad(f[:, i].sum(), z, retain_graph=True)[0] for i in range(3)], dim=1)
        )
    local_penalty = float(losses.gradient_penalty(torch.stack(local).detach()))
    assert abs(local_penalty - float(fd_penalty)) > 1e-3 * float(fd_penalty)
