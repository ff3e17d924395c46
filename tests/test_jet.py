"""The one-pass evaluation of every step (rnr.fitting.jet.jet_steps, Transform.map_steps_and_detj) and the device
branches of the jet, forced on CPU tensors so that a GPU run differs from a tested run only in the device."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnr import coords
from rnr.fitting import jet as jet_module
from rnr.fitting.network import ResNetMap, ResNetTransform
from rnr.fitting.transform import AffineTransform, IdentityTransform, Transform
from rnr.methods.table import load_transform


def _points(m: int, seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(m, 3, generator=g, dtype=dtype) * 2 - 1


def _model(n_blocks: int, shared: bool, dtype: torch.dtype = torch.float64, width: int = 24) -> ResNetMap:
    """A map far from the identity (W3, b3 scaled up): det J varies strongly and folds somewhere."""
    model = ResNetMap(n_blocks, width, shared_weights=shared, seed=3, dtype=dtype)
    with torch.no_grad():
        for block in model.blocks:
            block.W3.mul_(30.0)
            block.b3.mul_(30.0)
    return model.requires_grad_(False)


def _autograd_det(model: ResNetMap, x: torch.Tensor, step: int) -> torch.Tensor:
    """det of the Jacobian of phi_step by torch.func (forward-mode, no closed form involved): (M,)."""
    jac = torch.func.vmap(torch.func.jacfwd(lambda p: model(p[None], step)[0]))(x)
    return torch.linalg.det(jac)


@pytest.mark.parametrize(("n_blocks", "shared"), [(1, False), (5, False), (5, True)])
@pytest.mark.parametrize(("chunk", "workers"), [(None, None), (7, 1), (7, 3)])
def test_jet_steps_equal_autograd_for_every_step(n_blocks, shared, chunk, workers):
    model = _model(n_blocks, shared)
    x = _points(50)
    phis, det = model.steps_and_detj(x, chunk=chunk, workers=workers)
    assert phis.shape == (n_blocks, 50, 3) and det.shape == (n_blocks, 50) and det.dtype == torch.float64
    for n in range(1, n_blocks + 1):
        torch.testing.assert_close(phis[n - 1], model(x, n), rtol=1e-12, atol=1e-12)
        expected = _autograd_det(model, x, n)
        torch.testing.assert_close(det[n - 1], expected, rtol=1e-10, atol=1e-10)
    if n_blocks == 5:
        assert float(det.min()) < 0 < float(det.max())  # a strict test: some points fold
    # Stopping early gives the first steps of the full pass.
    phis2, det2 = model.steps_and_detj(x, step=2 if n_blocks > 1 else 1, chunk=chunk, workers=workers)
    torch.testing.assert_close(det2, det[: len(det2)], rtol=0, atol=0)


def test_jet_steps_float32_agrees_with_float64():
    model64 = _model(5, False, width=100)
    model32 = ResNetMap(5, 100, seed=3, dtype=torch.float32).requires_grad_(False)
    model32.load_state_dict({k: v.float() for k, v in model64.state_dict().items()})
    x = _points(3000, seed=1)
    _, det64 = model64.steps_and_detj(x)
    phis32, det32 = model32.steps_and_detj(x.float())
    assert phis32.dtype == torch.float32 and det32.dtype == torch.float64
    scale = det64.abs().amax(dim=1, keepdim=True)
    assert float(((det32 - det64).abs() / scale).max()) < 1e-3


def test_jet_steps_rejects_bad_arguments():
    model = _model(3, False)
    with pytest.raises(ValueError, match="n_steps"):
        jet_module.jet_steps(_points(4), [b.params() for b in model.blocks], 4)
    with pytest.raises(ValueError, match=r"\(M, 3\)"):
        jet_module.jet_steps(_points(4)[:, :2], [b.params() for b in model.blocks])
    phis, det = model.steps_and_detj(_points(0))
    assert phis.shape == (3, 0, 3) and det.shape == (3, 0)


def test_resnet_transform_steps_in_voxels_match_the_per_step_methods():
    size, spacing = (21, 17, 9), (0.9, 1.1, 2.5)
    model = _model(5, False, dtype=torch.float32, width=32)
    transform = ResNetTransform(size, spacing, model)
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 1, (700, 3)) * (np.array(size) - 1)
    mapped, detj = transform.map_steps_and_detj(pts, chunk=250)  # several calls
    assert mapped.shape == (5, 700, 3) and detj.shape == (5, 700)
    assert mapped.dtype == detj.dtype == np.float64
    u = coords.voxel_to_normalised(torch.as_tensor(pts), size)
    model64 = ResNetMap(5, 32, seed=3, dtype=torch.float64).requires_grad_(False)
    model64.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    for n in range(1, 6):
        np.testing.assert_allclose(mapped[n - 1], transform.apply_voxels(pts, n), atol=1e-3)
        expected = _autograd_det(model64, u, n).numpy()
        scale = np.abs(expected).max()
        assert np.abs(detj[n - 1] - expected).max() / scale < 1e-4
        np.testing.assert_array_equal(transform.jacobian_det_voxels(pts, n, chunk=300), detj[n - 1])
    np.testing.assert_array_equal(transform.jacobian_det_voxels(pts, 0), np.ones(700))


def test_identity_is_closed_form_and_exactly_one():
    size = (6, 5, 4)
    identity = IdentityTransform(size, (1.0, 1.0, 2.5))
    pts = coords.voxel_grid(size) + 0.3
    mapped, detj = identity.map_steps_and_detj(pts)
    assert mapped.shape == (1, 120, 3) and detj.shape == (1, 120)
    np.testing.assert_array_equal(mapped[0], pts)
    np.testing.assert_array_equal(detj, 1.0)
    u = torch.rand(10, 3, requires_grad=True)
    assert torch.equal(identity.jacobian_normalised(u), torch.eye(3).expand(10, 3, 3))
    np.testing.assert_array_equal(identity.jacobian_det_voxels(pts), 1.0)


def test_default_implementation_steps_through_the_per_step_methods():
    size = (9, 7, 5)
    a = np.array([[1.1, 0.2, 0.0], [0.0, 0.9, 0.1], [0.05, 0.0, 1.2]])
    affine = AffineTransform(size, (1, 1, 1), a, np.array([0.1, -0.2, 0.05]))
    pts = coords.voxel_grid(size)
    mapped, detj = Transform.map_steps_and_detj(affine, pts, chunk=40)
    assert mapped.shape == (1, len(pts), 3)
    np.testing.assert_array_equal(mapped[0], affine.apply_voxels(pts))
    np.testing.assert_allclose(detj[0], np.linalg.det(a), rtol=1e-5)


# -- device branches forced on CPU tensors --------------------------------------------------------------
@pytest.fixture
def gpu_branches(monkeypatch):
    """Make every device test of rnr/fitting/jet.py take its non-CPU branch (torch sin/cos, one chunk of all points,
    one worker) while the tensors stay on the CPU."""
    monkeypatch.setattr(jet_module, "_is_cpu", lambda device: False)


def test_forced_gpu_branch_of_the_evaluation_pass(gpu_branches, monkeypatch):
    model = _model(5, False, dtype=torch.float32, width=32)
    x = _points(2000, dtype=torch.float32)
    called = []
    real = torch.sin
    monkeypatch.setattr(jet_module.torch, "sin", lambda *a, **k: called.append(1) or real(*a, **k))
    phis, det = model.steps_and_detj(x)  # one chunk (DEVICE_CHUNK > M), one worker, torch's sin/cos
    assert called, "the torch sin/cos branch did not run"
    monkeypatch.undo()
    phis_cpu, det_cpu = model.steps_and_detj(x)
    torch.testing.assert_close(phis, phis_cpu, rtol=1e-5, atol=1e-5)
    assert float(((det - det_cpu).abs() / det_cpu.abs().max()).max()) < 1e-4


def test_forced_gpu_branch_of_the_fitting_pass(gpu_branches):
    model = _model(5, False, dtype=torch.float32, width=32).requires_grad_(True)
    x = _points(3000, dtype=torch.float32)
    phis, sq = model.jet(x)
    assert model._workspace.bounds == [(0, 3000)] and model._workspace.workers == 1  # the GPU layout
    grads = torch.autograd.grad(phis.square().mean() + sq.sum() / 1e4, list(model.parameters()))
    ref = _model(5, False, dtype=torch.float32, width=32).requires_grad_(True)
    phis_ref, sq_ref = jet_module.jet(
        x, [b.params() for b in ref.blocks], ref.layout, jet_module.Workspace(3000, 32, 5, x.dtype, x.device, chunk=256)
    )
    grads_ref = torch.autograd.grad(phis_ref.square().mean() + sq_ref.sum() / 1e4, list(ref.parameters()))
    torch.testing.assert_close(phis, phis_ref, rtol=1e-5, atol=1e-5)
    for g, r in zip(grads, grads_ref, strict=True):
        assert float((g - r).abs().max() / r.abs().max()) < 1e-4


def test_checkpoint_written_on_a_gpu_reloads_through_map_location(tmp_path, monkeypatch):
    """A checkpoint whose tensors are tagged as CUDA storage (what torch.save writes for GPU tensors) loads
    on a machine without CUDA, because load_transform maps every storage to the CPU first."""
    import torch.serialization as serialization

    transform = ResNetTransform((20, 16, 12), (1.0, 1.0, 2.0), _model(5, False, dtype=torch.float32, width=16))
    monkeypatch.setattr(serialization, "location_tag", lambda storage: "cuda:0")
    transform.save(tmp_path / "gpu.pt")
    monkeypatch.undo()
    if not torch.cuda.is_available():  # the checkpoint really is tagged for CUDA
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(tmp_path / "gpu.pt", weights_only=False)
    loaded, _ = load_transform(tmp_path / "gpu.pt", "cpu")
    pts = np.array([[0.0, 0.0, 0.0], [10.0, 5.0, 3.0], [19.0, 15.0, 11.0]])
    np.testing.assert_array_equal(loaded.map_steps_and_detj(pts)[1], transform.map_steps_and_detj(pts)[1])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_evaluation_pass_on_cuda_matches_cpu():
    transform = ResNetTransform((40, 30, 20), (1.0, 1.0, 2.5), _model(5, False, dtype=torch.float32, width=100))
    pts = np.random.default_rng(0).uniform(0, 1, (20_000, 3)) * (np.array([40, 30, 20]) - 1)
    mapped, detj = transform.map_steps_and_detj(pts)
    transform.to("cuda")
    mapped_g, detj_g = transform.map_steps_and_detj(pts, chunk=7000)
    np.testing.assert_allclose(mapped_g, mapped, atol=1e-3)
    assert np.abs(detj_g - detj).max() / np.abs(detj).max() < 1e-3
