"""The IDIR baseline (rnr/methods/idir.py): exact bending energy, the SIREN and its closed-form Hessians, the
settings a configuration ``{method: idir}`` gets, checkpoints, and a registration on a phantom case."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from rnr import layout
from rnr.config import SettingsError
from rnr.data.case import load_case
from rnr.evaluation import metrics
from rnr.evaluation.evaluate import evaluate_run
from rnr.fitting.transform import IdentityTransform
from rnr.methods.idir import IDIRSettings, Siren, SirenTransform, bending_energy, idir_energy
from rnr.methods.settings import settings_for_method, settings_from_mapping
from rnr.methods.table import load_transform
from rnr.registration import register_case


def _points(m: int = 200, seed: int = 0) -> torch.Tensor:
    return torch.rand(m, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2 - 1


# ----------------------------------------------------------------------------------------- bending energy
def test_bending_energy_of_quadratic_field_is_analytic():
    """u = (x^2, x y, 0): Hess u_1 = [[2,0,0],[0,0,0],[0,0,0]] (4); Hess u_2 has the mixed term 1 twice
    (2); Hess u_3 = 0. Total 6 at every point."""
    x = _points()
    energy = bending_energy(lambda p: torch.stack([p[:, 0] ** 2, p[:, 0] * p[:, 1], 0 * p[:, 2]], 1), x)
    assert float(energy.detach()) == pytest.approx(6.0, abs=1e-12)


def test_bending_energy_of_cubic_field_is_analytic_pointwise_mean():
    """u = (x^2 y, y z, z^3): per point 4 y^2 + 8 x^2 (u_1) + 2 (u_2) + 36 z^2 (u_3)."""
    x = _points(seed=1)
    energy = bending_energy(lambda p: torch.stack([p[:, 0] ** 2 * p[:, 1], p[:, 1] * p[:, 2], p[:, 2] ** 3], 1), x)
    expected = (4 * x[:, 1] ** 2 + 8 * x[:, 0] ** 2 + 2 + 36 * x[:, 2] ** 2).mean()
    assert float(energy.detach()) == pytest.approx(float(expected), rel=1e-12)


def test_bending_energy_vanishes_on_affine_fields():
    a = torch.tensor([[0.3, -1.0, 2.0], [0.5, 0.1, 0.0], [1.0, 1.0, -0.7]], dtype=torch.float64)
    assert float(bending_energy(lambda p: p @ a.T + 0.2, _points())) == pytest.approx(0.0, abs=1e-20)


def test_siren_closed_form_hessian_equals_autograd_bending_energy():
    net = Siren(width=32, omega0=32.0, seed=5, dtype=torch.float64)
    x = _points(64, seed=2)
    u, energy = net.bending_energy(x)
    reference = bending_energy(net, x)
    np.testing.assert_allclose(u.detach().numpy(), net(x).detach().numpy(), rtol=0, atol=1e-12)
    assert float(energy.detach()) == pytest.approx(float(reference.detach()), rel=1e-10)
    assert float(energy.detach()) > 1.0  # omega0 = 32: far from affine, so the check is not vacuous
    # The parameter gradients of the two formulations agree too (the fitting path is differentiated).
    params = list(net.parameters())
    g_closed = torch.autograd.grad(energy, params, materialize_grads=True)
    g_ref = torch.autograd.grad(bending_energy(net, x), params, materialize_grads=True)
    assert float(g_ref[0].abs().max()) > 0
    for a, b in zip(g_closed, g_ref, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-8, atol=1e-8 * float(b.abs().max()))


# ----------------------------------------------------------------------------------------------- the SIREN
def test_siren_architecture_and_initialisation():
    net = Siren(seed=3)
    shapes = [tuple(layer.weight.shape) for layer in net.layers]
    assert shapes == [(256, 3), (256, 256), (256, 256), (3, 256)]
    assert net.omega0 == 32.0
    first = net.layers[0].weight.abs().max().item()
    assert 0.95 / 3 < first <= 1 / 3  # U(-1/3, 1/3)
    bound = math.sqrt(6 / 256) / 32
    for layer in net.layers[1:]:
        assert 0.95 * bound < layer.weight.abs().max().item() <= bound  # U(-sqrt(6/in)/omega0, ...)
    # Same seed, same network; another seed, another one.
    assert torch.equal(Siren(seed=3).layers[1].weight, net.layers[1].weight)
    assert not torch.equal(Siren(seed=4).layers[1].weight, net.layers[1].weight)
    x = _points(10).float()
    h = torch.sin(32.0 * net.layers[0](x))
    h = torch.sin(32.0 * net.layers[1](h))
    h = torch.sin(32.0 * net.layers[2](h))
    torch.testing.assert_close(net(x), net.layers[3](h))


def test_idir_energy_combines_ncc_and_weighted_bending():
    net = Siren(width=16, seed=0, dtype=torch.float64)
    x = _points(100)
    fixed = torch.sin(3 * x[:, 0]) + x[:, 1]
    sample = lambda p: torch.sin(3 * p[:, 0]) + p[:, 1]  # noqa: E731 - an analytic "moving image"
    loss, dis, bend = (t.detach() for t in idir_energy(net, x, fixed, sample, alpha_bending=1e-3))
    u = net(x).detach()
    a, b = sample(x + u), fixed
    a0, b0 = a - a.mean(), b - b.mean()
    ncc = (a0 * b0).mean() / (a0.square().mean().sqrt() * b0.square().mean().sqrt())
    assert float(dis) == pytest.approx(1 - float(ncc), abs=1e-6)  # rnr.fitting.losses.ncc adds eps = 1e-8
    assert float(bend) == pytest.approx(float(bending_energy(net, x).detach()), rel=1e-9)
    assert float(loss) == pytest.approx(float(dis) + 1e-3 * float(bend), rel=1e-12)
    loss0, _, bend0 = (t.detach() for t in idir_energy(net, x, fixed, sample, alpha_bending=0.0))
    assert math.isnan(float(bend0)) and float(loss0) == pytest.approx(float(dis), rel=1e-12)


# ------------------------------------------------------------------------------------------------ settings
def test_method_idir_gets_idir_defaults_and_explicit_keys_win():
    s = settings_from_mapping({"method": "idir"})
    p = s.params
    assert isinstance(p, IDIRSettings)
    assert (p.lr, p.iterations, p.batch_size, p.sampling) == (1e-5, 2500, 10000, "random")
    assert (p.alpha_bending, p.omega0, p.idir_width) == (1e-3, 32.0, 256)
    assert settings_for_method("idir") == s
    p = settings_from_mapping({"method": "idir", "lr": 1e-4, "idir_width": 64, "omega0": 16}).params
    assert (p.lr, p.idir_width, p.omega0) == (1e-4, 64, 16.0)
    # RNR's defaults are untouched.
    assert settings_from_mapping({}).params.lr == 1e-4
    for bad in ({"idir_width": 0}, {"omega0": 0}, {"alpha_bending": -1.0}, {"method": "voxelmorph"}):
        with pytest.raises(SettingsError):
            settings_from_mapping({"method": "idir", **bad})


# ----------------------------------------------------------------------------------------------- checkpoint
def test_siren_transform_checkpoint_round_trip(tmp_path):
    net = Siren(width=24, omega0=20.0, seed=7)
    t = SirenTransform((30, 20, 10), (1.0, 1.5, 2.5), net)
    t.save(tmp_path / "ckpt.pt", configuration="idir")
    loaded, meta = load_transform(tmp_path / "ckpt.pt")
    assert isinstance(loaded, SirenTransform) and loaded.kind == "idir" and meta["configuration"] == "idir"
    assert (loaded.network.width, loaded.network.omega0) == (24, 20.0)
    pts = np.random.default_rng(0).uniform(0, 9, size=(40, 3))
    np.testing.assert_array_equal(loaded.apply_voxels(pts), t.apply_voxels(pts))
    np.testing.assert_array_equal(loaded.jacobian_det_voxels(pts), t.jacobian_det_voxels(pts))


# ------------------------------------------------------------------------------------- on a phantom case
# Reduced for a CPU test (IDIR's own 2500 x 10,000 points at lr 1e-5 take hours on 2 CPU cores): a narrower
# SIREN, 150 iterations of 1,000 points, and lr 1e-4 so that 150 steps suffice.
TEST_SETTINGS = {"method": "idir", "idir_width": 64, "iterations": 150, "batch_size": 1000, "lr": 1e-4, "device": "cpu"}


def test_idir_registration_halves_tre_and_evaluates_like_any_map(phantom_case8, tmp_path, one_thread):
    case = load_case(phantom_case8)
    mask_path = case.path / layout.MASK_PROVIDED
    mask = case.load_mask(mask_path)
    out = tmp_path / "run"
    result = register_case(case, mask, settings_from_mapping(TEST_SETTINGS), out, name="idir", progress=False)

    source, target = case.landmarks("T00"), case.landmarks("T50")
    before = metrics.landmark_tre(IdentityTransform(case.size_xyz, case.spacing_xyz), source, target)
    after = metrics.landmark_tre(result.transform, source, target)
    assert after.continuous.mean_mm <= 0.5 * before.continuous.mean_mm
    assert after.snapped.mean_mm <= 0.5 * before.snapped.mean_mm

    record = json.loads((out / layout.RUN_JSON).read_text())
    assert record["method"] == "idir" and record["iterations"] == 150 and record["batch_size"] == 1000
    assert record["compared_terms"] == ["T50_phi1_vs_T00"] and record["intermediate_used"] is False
    log = pd.read_csv(out / layout.LOSS_CSV)
    assert list(log.columns) == ["iteration", "loss", "dissimilarity", "bending", "elapsed_s"]
    np.testing.assert_allclose(log["loss"], log["dissimilarity"] + 1e-3 * log["bending"], rtol=1e-5)
    assert log["dissimilarity"].iloc[-10:].mean() < log["dissimilarity"].iloc[:10].mean()

    # rnr evaluate: the checkpoint reloads as a SirenTransform and is scored by the one TRE code path.
    record = evaluate_run(phantom_case8, out, mask_path=mask_path, device="cpu", figures=False)
    assert record["transform_kind"] == "idir" and record["method"] == "idir"
    assert record["tre"]["mean_mm"] == pytest.approx(after.continuous.mean_mm, rel=1e-6)
    assert record["folding"]["n_points"] == int(mask.sum())
    # The phantom's lungs slide along the pleura: a smooth map fitted hard folds a little at the lung border.
    assert record["folding"]["fraction"] < 0.05


def test_idir_has_no_intermediate_phases_setting():
    with pytest.raises(SettingsError, match="'intermediate' belongs to method rnr, not idir"):
        settings_from_mapping({**TEST_SETTINGS, "intermediate": True})


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_idir_fits_on_cuda(phantom_case8, tmp_path):
    case = load_case(phantom_case8)
    mask = case.load_mask(case.path / layout.MASK_PROVIDED)
    result = register_case(
        case, mask, settings_from_mapping({**TEST_SETTINGS, "device": "cuda"}), tmp_path, name="idir", progress=False
    )
    assert result.record["device"] == "cuda"
    source, target = case.landmarks("T00"), case.landmarks("T50")
    before = metrics.landmark_tre(IdentityTransform(case.size_xyz, case.spacing_xyz), source, target)
    after = metrics.landmark_tre(result.transform, source, target)
    assert after.continuous.mean_mm <= 0.5 * before.continuous.mean_mm
