"""The ResNet map (rnr/fitting/network.py) and its one-pass jet with hand-written backward (rnr/fitting/jet.py)."""

from __future__ import annotations

import pytest
import torch

from rnr.fitting import jet as jet_module
from rnr.fitting.network import ResidualBlock, ResNetMap, ResNetTransform
from rnr.methods.reference import reference_passes
from rnr.methods.table import load_transform

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _points(m: int, seed: int = 0, dtype: torch.dtype = torch.float32, spread: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(m, 3, generator=g, dtype=dtype) * 2 - 1) * spread


def _excited(model: ResNetMap, scale: float = 200.0) -> ResNetMap:
    """Blow up W3, b3: residuals O(0.1-1) and Jacobians far from the identity (a strict test)."""
    with torch.no_grad():
        for block in model.blocks:
            block.W3.mul_(scale)
            block.b3.mul_(scale)
    return model


def _autograd_jacobian(fn, x: torch.Tensor) -> torch.Tensor:
    """(M, 3) -> (M, 3, 3) Jacobian of a pointwise map by three autograd passes."""
    x = x.detach().clone().requires_grad_(True)
    y = fn(x)
    rows = [torch.autograd.grad(y[:, i].sum(), x, retain_graph=True)[0] for i in range(3)]
    return torch.stack(rows, dim=1)


def test_parameter_count_matches_method():
    assert ResNetMap(5, 100).n_parameters() == 54_015
    assert ResNetMap(5, 100, shared_weights=True).n_parameters() == 54_015 // 5
    assert ResidualBlock(100).W2.shape == (100, 100)


def test_initialisation_distribution_and_seed():
    model = ResNetMap(5, 100, seed=3)
    w2 = torch.cat([b.W2.detach().ravel() for b in model.blocks])
    w3 = torch.cat([b.W3.detach().ravel() for b in model.blocks])
    assert abs(float(w2.std()) - 1.0) < 0.02 and abs(float(w2.mean())) < 0.02
    assert abs(float(w3.std()) - 1e-3) < 1e-4
    again = ResNetMap(5, 100, seed=3)
    other = ResNetMap(5, 100, seed=4)
    for a, b, c in zip(model.parameters(), again.parameters(), other.parameters(), strict=True):
        assert torch.equal(a, b)
        assert not torch.equal(a, c)


def test_identity_at_initialisation_and_positive_determinant():
    """Near the identity at initialisation, with det J > 0 everywhere.

    With W3, b3 ~ N(0, 1e-3^2) and 100 hidden sines (mean square ~1/2), each residual F_n has a per-component
    RMS of about 1e-3 * sqrt(50) = 7e-3 normalised units: each block is within 1e-2 (RMS). Five independent
    blocks add up to ~0.016 RMS per component and ~0.06 at the worst of thousands of points, so the whole map is
    bounded by 0.1 pointwise (a max-norm bound of 1e-2 on phi_5 does not follow from the specified
    initialisation).
    """
    model = ResNetMap(5, 100, seed=3)
    x = _points(8000, spread=1.2)  # the volume and a margin around it
    with torch.no_grad():
        phis, residuals = model.trajectory(x)
    for f in residuals:
        assert float(f.square().mean().sqrt()) < 1e-2
    assert float((phis[-1] - x).abs().max()) < 0.1
    det = torch.linalg.det(model.jacobian(x).double())
    # The random sines make the initial map wiggly (det J between ~0.4 and ~2.2 for seeds 0, 1, 3), but it
    # never folds.
    assert float(det.min()) > 0.2


@pytest.mark.parametrize("shared", [False, True])
def test_trajectory_and_steps(shared):
    model = _excited(ResNetMap(4, 16, shared, seed=1))
    x = _points(50)
    with torch.no_grad():
        phis, residuals = model.trajectory(x)
        assert len(phis) == 5 and len(residuals) == 4
        assert torch.equal(phis[0], x)
        for n in range(1, 5):
            torch.testing.assert_close(phis[n], phis[n - 1] + model.block(n)(phis[n - 1]))
            torch.testing.assert_close(model(x, n), phis[n])
        assert torch.equal(model(x, 0), x)
    if shared:
        assert model.block(1) is model.block(4)
    with pytest.raises(IndexError):
        model.block(5)


@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("step", [None, 1, 3])
def test_closed_form_jacobian_equals_autograd(shared, step):
    model = _excited(ResNetMap(5, 24, shared, seed=2, dtype=torch.float64))
    x = _points(200, dtype=torch.float64)
    expected = _autograd_jacobian(lambda p: model(p, step), x)
    got = model.jacobian(x, step)
    torch.testing.assert_close(got, expected, rtol=1e-8, atol=1e-8)
    assert float((expected - torch.eye(3, dtype=torch.float64)).abs().max()) > 0.1  # not a trivial identity


@pytest.mark.parametrize("shared", [False, True])
def test_jet_values_and_squared_norms_equal_reference(shared):
    model = _excited(ResNetMap(5, 24, shared, seed=5, dtype=torch.float64))
    x = _points(300, dtype=torch.float64)
    phis, sq = model.jet(x)
    ref_phis, ref_jac = reference_passes(model, x)
    torch.testing.assert_close(phis, ref_phis.detach(), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(sq, ref_jac.detach().square().sum(dim=(1, 2, 3)), rtol=1e-9, atol=0)


@pytest.mark.parametrize("shared", [False, True])
def test_jet_backward_passes_gradcheck(shared):
    torch.manual_seed(0)
    model = _excited(ResNetMap(3, 5, shared, seed=7, dtype=torch.float64), scale=100.0)
    x = _points(6, dtype=torch.float64)
    params = [b.params() for b in model.blocks]
    flat = [p for block in params for p in block]

    def fn(*flat_params):
        unique = [tuple(flat_params[6 * i : 6 * i + 6]) for i in range(len(flat_params) // 6)]
        return jet_module.jet(x, unique, model.layout)

    assert torch.autograd.gradcheck(fn, flat, eps=1e-6, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("chunk", [3, 4, 1000])
def test_jet_backward_passes_gradcheck_over_several_chunks(chunk):
    """Points split into chunks (10 points: 4+3+3, 3+3+2+2... and one chunk) give the same exact gradients."""
    model = _excited(ResNetMap(2, 4, seed=8, dtype=torch.float64), scale=100.0)
    x = _points(10, dtype=torch.float64)
    flat = [p for b in model.blocks for p in b.params()]

    def fn(*flat_params):
        ws = jet_module.Workspace(10, 4, 2, torch.float64, torch.device("cpu"), chunk=chunk, workers=1)
        assert len(ws.bounds) == -(-10 // chunk)
        unique = [tuple(flat_params[6 * i : 6 * i + 6]) for i in range(len(flat_params) // 6)]
        return jet_module.jet(x, unique, model.layout, ws)

    assert torch.autograd.gradcheck(fn, flat, eps=1e-6, atol=1e-7, rtol=1e-5)


def test_jet_worker_threads_are_deterministic_and_agree_with_one_thread():
    model = _excited(ResNetMap(5, 32, seed=4), scale=30.0)
    x = _points(3500)
    params = [b.params() for b in model.blocks]
    results = []
    for workers in (2, 2, 1):
        ws = jet_module.Workspace(3500, 32, 5, torch.float32, torch.device("cpu"), workers=workers)
        assert ws.workers == workers and len(ws.bounds) == 4
        phis, sq = jet_module.jet(x, params, model.layout, ws)
        loss = phis.square().mean() + sq.sum() / 3500
        results.append((phis.detach(), torch.autograd.grad(loss, list(model.parameters()))))
    (p2, g2), (p2b, g2b), (p1, g1) = results
    assert torch.equal(p2, p2b) and all(torch.equal(a, b) for a, b in zip(g2, g2b, strict=True))
    assert torch.equal(p2, p1)  # the forward does not depend on the threads at all
    for a, b in zip(g2, g1, strict=True):
        assert float((a - b).abs().max() / b.abs().max()) < 1e-5


def test_jet_workspace_reuse_before_backward_is_an_error():
    model = ResNetMap(2, 8, seed=1)
    x = _points(20)
    phis, _ = model.jet(x)
    model.jet(x + 0.1)  # overwrites the buffers the first result's backward needs
    with pytest.raises(RuntimeError, match="workspace was reused"):
        phis.sum().backward()


def test_jet_gradients_equal_autograd_float32_at_fitting_size():
    """At the fitting size in float32 the hand-written backward agrees with autograd to float precision."""
    model = ResNetMap(5, 100, seed=3)
    x = _points(2000, seed=1)
    target = _points(2000, seed=2)
    grads = []
    for fast in (True, False):
        if fast:
            phis, sq = model.jet(x)
        else:
            phis, jac = reference_passes(model, x)
            sq = jac.square().sum(dim=(1, 2, 3))
        loss = (phis - target).square().mean() + sq.sum() / (5 * 2000)
        grads.append(torch.autograd.grad(loss, list(model.parameters())))
    for g_fast, g_ref in zip(*grads, strict=True):
        assert float((g_fast - g_ref).abs().max() / g_ref.abs().max()) < 1e-4


def test_transform_checkpoint_roundtrip(tmp_path):
    model = _excited(ResNetMap(5, 16, seed=3), scale=20.0)
    transform = ResNetTransform((20, 16, 12), (1.0, 1.5, 2.5), model)
    assert transform.n_steps == 5
    pts = torch.tensor([[0.0, 0.0, 0.0], [10.0, 5.0, 3.0], [19.0, 15.0, 11.0]]).numpy()
    path = tmp_path / "checkpoint.pt"
    transform.save(path, case=7)
    loaded, meta = load_transform(path, "cpu")
    assert isinstance(loaded, ResNetTransform) and meta == {"case": 7}
    assert loaded.size_xyz == (20, 16, 12) and loaded.spacing_xyz == (1.0, 1.5, 2.5)
    for step in (None, 2):
        assert (loaded.apply_voxels(pts, step) == transform.apply_voxels(pts, step)).all()
    det = loaded.jacobian_det_voxels(pts)
    u = torch.as_tensor(pts, dtype=torch.float32)
    from rnr import coords

    u_norm = coords.voxel_to_normalised(u, (20, 16, 12))
    expected = torch.linalg.det(_autograd_jacobian(model, u_norm).double())
    torch.testing.assert_close(torch.as_tensor(det), expected, rtol=1e-3, atol=1e-4)
    assert float((expected - 1).abs().max()) > 0.05  # the map is not a trivial identity


@pytest.mark.gpu
@cuda
def test_jet_on_cuda_matches_cpu():
    model = _excited(ResNetMap(5, 100, seed=3))
    x = _points(5000)
    phis, sq = model.jet(x)
    loss = phis.square().mean() + sq.sum() / 25_000
    grads = torch.autograd.grad(loss, list(model.parameters()))
    model_gpu = _excited(ResNetMap(5, 100, seed=3)).cuda()
    phis_g, sq_g = model_gpu.jet(x.cuda())
    loss_g = phis_g.square().mean() + sq_g.sum() / 25_000
    grads_g = torch.autograd.grad(loss_g, list(model_gpu.parameters()))
    torch.testing.assert_close(loss_g.cpu(), loss, rtol=1e-4, atol=1e-6)
    for a, b in zip(grads_g, grads, strict=True):
        assert float((a.cpu() - b).abs().max() / b.abs().max()) < 1e-3


@pytest.mark.gpu
@cuda
def test_checkpoint_reloads_on_cuda(tmp_path):
    transform = ResNetTransform((20, 16, 12), (1.0, 1.0, 1.0), _excited(ResNetMap(5, 16, seed=3)))
    transform.save(tmp_path / "c.pt")
    loaded, _ = load_transform(tmp_path / "c.pt", "cuda")
    pts = torch.rand(10, 3).numpy() * 10
    assert abs(loaded.apply_voxels(pts) - transform.apply_voxels(pts)).max() < 1e-4
