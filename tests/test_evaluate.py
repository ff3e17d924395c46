"""``rnr evaluate`` end to end on a tiny hand-made converted case, and the warping it uses for its panels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import torch
from evaluation_case import make_case

import rnr.methods.table
from rnr import cli, coords, layout
from rnr.data.case import load_case
from rnr.evaluation import metrics, warp
from rnr.evaluation.panels import slice_geometry
from rnr.fitting.transform import AffineTransform, IdentityTransform, Transform
from rnr.io import write_csv, write_image, write_json

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class StepShift(Transform):
    """Five steps: phi_n(u) = (1 + 0.02 n) u + n d (a checkpoint-loadable test map with steps)."""

    kind = "test-step-shift"
    n_steps = 5

    def __init__(self, size_xyz, spacing_xyz, shift=(0.0, 0.0, 0.0)):
        super().__init__(size_xyz, spacing_xyz)
        self.shift = torch.as_tensor(shift, dtype=torch.float32)

    def map_normalised(self, u, step=None):
        n = self.n_steps if step is None else step
        return (1 + 0.02 * n) * u + n * self.shift.to(u.device)

    def state(self):
        return {"shift": self.shift}

    @classmethod
    def from_state(cls, state, size_xyz, spacing_xyz, device):
        return cls(size_xyz, spacing_xyz, state["shift"].numpy()).to(device)


class StepTranslate(Transform):
    """phi_n(x) = x + c_n d in voxels, n = 1..5 (steps of unequal length: c is not proportional to n)."""

    kind = "test-step-translate"
    n_steps = 5

    def __init__(self, size_xyz, spacing_xyz, d_vox=(0.0, 0.0, 0.0), c=(1, 2, 3, 4, 5)):
        super().__init__(size_xyz, spacing_xyz)
        self.d_vox, self.c = tuple(d_vox), tuple(c)

    def map_normalised(self, u, step=None):
        n = self.n_steps if step is None else step
        scale = torch.tensor([2.0 / (k - 1) for k in self.size_xyz], dtype=u.dtype, device=u.device)
        return u + self.c[n - 1] * torch.tensor(self.d_vox, dtype=u.dtype, device=u.device) * scale

    def state(self):
        return {"d_vox": list(self.d_vox), "c": list(self.c)}

    @classmethod
    def from_state(cls, state, size_xyz, spacing_xyz, device):
        return cls(size_xyz, spacing_xyz, state["d_vox"], state["c"]).to(device)


class FoldsNearXBorders(Transform):
    """phi(u) = (u_x + a sin(pi u_x), u_y, u_z): det J = 1 + a pi cos(pi u_x) <= 0 only where |u_x| is large,
    so where folding is counted (which voxels) decides how much is found."""

    kind = "test-folds-near-x-borders"
    A = 0.5

    def map_normalised(self, u, step=None):
        out = u.clone() if not u.requires_grad else u * 1.0
        out[:, 0] = u[:, 0] + self.A * torch.sin(torch.pi * u[:, 0])
        return out


@pytest.fixture(autouse=True)
def test_transforms_loadable(monkeypatch):
    """Checkpoints of this file's test maps reload through the method table's extra transforms."""
    extra = (*rnr.methods.table.EXTRA_TRANSFORMS, StepShift, StepTranslate, FoldsNearXBorders)
    monkeypatch.setattr(rnr.methods.table, "EXTRA_TRANSFORMS", extra)


def _run(*argv: str) -> int:
    return cli.main(list(argv))


def _metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / layout.METRICS_JSON).read_text())


def _displacement_tre(case_dir: Path) -> np.ndarray:
    """TRE of the identity straight from the landmark CSVs (independent of rnr.evaluation.metrics)."""
    t00 = pd.read_csv(case_dir / "landmarks_T00.csv")[["x_mm", "y_mm", "z_mm"]].to_numpy()
    t50 = pd.read_csv(case_dir / "landmarks_T50.csv")[["x_mm", "y_mm", "z_mm"]].to_numpy()
    return np.linalg.norm(t50 - t00, axis=1)


def _is_png(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 1000 and path.read_bytes()[:8] == PNG_MAGIC


def test_identity_evaluation(tmp_path):
    case_dir = make_case(tmp_path / "case1", intermediate=True)
    run_dir = tmp_path / "runs" / "initial" / "case1"
    assert _run("evaluate", "--case-dir", str(case_dir), "--run-dir", str(run_dir), "--identity") == 0
    m = _metrics(run_dir)
    assert (m["case"], m["configuration"], m["runtime_s"], m["device"]) == (1, "initial", 0.0, "none")
    expected = _displacement_tre(case_dir)
    per = pd.DataFrame(m["tre"]["per_landmark"])
    np.testing.assert_allclose(per["tre_mm"], expected, atol=1e-4)
    np.testing.assert_allclose(per["tre_snapped_mm"], expected, atol=1e-9)
    assert m["tre"]["mean_mm"] == pytest.approx(expected.mean(), abs=1e-4)
    assert m["tre"]["std_mm"] == pytest.approx(expected.std(ddof=1), abs=1e-4)
    assert m["tre"]["ddof"] == 1 and m["tre"]["n_landmarks"] == len(expected)
    mask = load_case(case_dir).load_mask()
    fold = m["folding"]
    assert (fold["count"], fold["fraction"], fold["n_points"]) == (0, 0.0, int(mask.sum()))
    assert fold["min_det"] == pytest.approx(1.0)
    # Intermediate TRE under the default pairing 'seed': step n compares T(50-10n) with T50.
    steps = m["intermediate"]["steps"]
    assert m["intermediate"]["pairing"] == "seed" and [s["source_phase"] for s in steps] == [
        "T40",
        "T30",
        "T20",
        "T10",
        "T00",
    ]
    assert "0-based" in m["conventions"]["indices"] and "ddof = 1" in m["conventions"]["std"]
    # The identity map gets one slice panel: its steps repeat the unregistered images, its det J is 1.
    assert [Path(f).name for f in m["figures"]] == ["slices_T00_T50.png"]
    assert all(_is_png(run_dir / f) for f in m["figures"])


def test_checkpoint_evaluation_reads_the_run_record(tmp_path):
    case_dir = make_case(tmp_path / "case2", case=2)
    case = load_case(case_dir)
    run_dir = tmp_path / "runs" / "affine" / "case2"
    a = np.diag([1.0, 1.05, 0.9])
    transform = AffineTransform(case.size_xyz, case.spacing_xyz, a, np.array([0.0, 0.05, -0.1]))
    transform.save(run_dir / layout.CHECKPOINT, configuration="from-checkpoint")
    write_json(
        run_dir / layout.RUN_JSON,
        {
            "case": 2,
            "configuration": "affine",
            "method": "rnr",
            "settings": {"pairing": "trajectory"},
            "device": "cpu",
            "wall_s": 12.5,
            "iterations": 10,
            "iterations_per_s": 0.8,
        },
    )
    write_csv(run_dir / layout.LOSS_CSV, pd.DataFrame({"iteration": np.arange(20), "loss": np.linspace(1, 0.2, 20)}))
    assert _run("evaluate", "--case-dir", str(case_dir), "--run-dir", str(run_dir)) == 0
    m = _metrics(run_dir)
    assert (m["configuration"], m["method"], m["runtime_s"], m["device"]) == ("affine", "rnr", 12.5, "cpu")
    assert m["run"]["iterations"] == 10 and m["pairing"] == "trajectory"
    direct = metrics.landmark_tre(transform, case.landmarks("T00"), case.landmarks("T50"))
    assert m["tre"]["mean_mm"] == pytest.approx(direct.continuous.mean_mm)
    assert m["tre"]["snapped_mean_mm"] == pytest.approx(direct.snapped.mean_mm)
    assert m["tre"]["z_mm"] == pytest.approx(direct.continuous.axis_mean_mm[2])
    assert m["folding"]["min_det"] == pytest.approx(np.linalg.det(a), rel=1e-5)
    assert m["folding"]["max_det"] == pytest.approx(np.linalg.det(a), rel=1e-5)
    assert m["folding"]["per_step"] == [] and m["intermediate"] is None
    assert {Path(f).name for f in m["figures"]} == {"slices_T00_T50.png", "detj.png", "loss.png"}
    assert all(_is_png(run_dir / f) for f in m["figures"])
    # Without run.json the configuration comes from the checkpoint's metadata.
    (run_dir / layout.RUN_JSON).unlink()
    assert _run("evaluate", "--case-dir", str(case_dir), "--run-dir", str(run_dir), "--no-figures") == 0
    m = _metrics(run_dir)
    assert m["configuration"] == "from-checkpoint" and m["runtime_s"] is None and m["figures"] == []


def test_stepped_map_gets_per_step_folding_tre_and_panels(tmp_path):
    case_dir = make_case(tmp_path / "case3", case=3, intermediate=True)
    case = load_case(case_dir)
    run_dir = tmp_path / "runs" / "steps" / "case3"
    StepShift(case.size_xyz, case.spacing_xyz, (0.0, 0.0, -0.05)).save(
        run_dir / layout.CHECKPOINT, configuration="steps"
    )
    assert _run("evaluate", "--case-dir", str(case_dir), "--run-dir", str(run_dir)) == 0
    m = _metrics(run_dir)
    per_step = m["folding"]["per_step"]
    assert [s["step"] for s in per_step] == [1, 2, 3, 4, 5]
    assert [s["min_det"] for s in per_step] == pytest.approx([(1 + 0.02 * n) ** 3 for n in range(1, 6)], rel=1e-5)
    assert m["folding"]["min_det"] == pytest.approx(1.1**3, rel=1e-5)
    assert len(m["intermediate"]["steps"]) == 5
    assert sum(Path(f).name.startswith("slices_") for f in m["figures"]) == 5


def test_run_figures_name_the_configuration_by_its_label(tmp_path, monkeypatch):
    """`rnr evaluate --label TEXT`: every run figure's title names the configuration by its display label (the
    titles are read where the real panel writers receive them; the figures are still written)."""
    from rnr.evaluation import panels

    titles = []
    for name in ("step_panel", "detj_panel"):
        original = getattr(panels, name)

        def spy(*args, _original=original, **kwargs):
            titles.extend(a for a in (*args, *kwargs.values()) if isinstance(a, str) and a.startswith("case "))
            return _original(*args, **kwargs)

        monkeypatch.setattr(panels, name, spy)
    case_dir = make_case(tmp_path / "case3", case=3, intermediate=True)
    case = load_case(case_dir)
    run_dir = tmp_path / "runs" / "steps" / "case3"
    StepShift(case.size_xyz, case.spacing_xyz, (0.0, 0.0, -0.05)).save(
        run_dir / layout.CHECKPOINT, configuration="steps"
    )
    argv = ["evaluate", "--case-dir", str(case_dir), "--run-dir", str(run_dir), "--label", "Stepped shift"]
    assert _run(*argv) == 0
    assert len(titles) == 6  # five step panels and the det J panel
    assert all(t.startswith("case 3, Stepped shift: ") for t in titles), titles
    assert len(_metrics(run_dir)["figures"]) >= 6


def test_trajectory_runs_are_scored_with_the_trajectory_pairs(tmp_path):
    """A stepped map that is exact under `trajectory` (phi_n carries T00 landmarks to phase T(10n)) scores 0 at
    every step when its run says pairing: trajectory; scored with the seed pairs it would not."""
    case_dir = make_case(tmp_path / "case4", case=4, intermediate=True)
    case = load_case(case_dir)
    d, c = np.array([0.5, 0.3, -1.0]), (0.0, 1.0, 3.0, 4.0, 4.5, 5.0)  # T(10k) = T00 + c_k d
    base = np.array([[4.0, 3.0, 6.0], [8.0, 5.0, 7.0], [6.0, 8.0, 6.5], [10.0, 4.0, 5.5]])
    for k, phase in enumerate(layout.PHASES):
        write_csv(case_dir / layout.sampled4d_name(phase), layout.landmark_table(base + c[k] * d, case.spacing_xyz))
    run_dir = tmp_path / "runs" / "traj" / "case4"
    StepTranslate(case.size_xyz, case.spacing_xyz, d, c[1:]).save(run_dir / layout.CHECKPOINT)
    write_json(run_dir / layout.RUN_JSON, {"case": 4, "configuration": "traj", "settings": {"pairing": "trajectory"}})
    assert _run("evaluate", "--case-dir", str(case_dir), "--run-dir", str(run_dir), "--no-figures") == 0
    steps = _metrics(run_dir)["intermediate"]["steps"]
    assert [(s["source_phase"], s["target_phase"]) for s in steps] == [("T00", f"T{10 * n}") for n in range(1, 6)]
    assert max(s["mean_mm"] for s in steps) < 1e-5
    # The same map under the seed pairing misses by |c_(5-n) + c_n - c_5| |d| at steps 1..4.
    write_json(run_dir / layout.RUN_JSON, {"case": 4, "configuration": "traj", "settings": {"pairing": "seed"}})
    assert _run("evaluate", "--case-dir", str(case_dir), "--run-dir", str(run_dir), "--no-figures") == 0
    seed_steps = _metrics(run_dir)["intermediate"]["steps"]
    assert min(s["mean_mm"] for s in seed_steps[:4]) > 0.4


def test_folding_is_counted_on_the_mask_voxels_in_x_y_z_order(tmp_path):
    """Folding of a map that folds only near the x borders, on a mask that is not symmetric in its axes: the
    count equals the mask voxels whose x index folds (computed here from the formula), so a mask read in the
    wrong axis order, or points in the wrong order, would count other voxels."""
    case_dir = make_case(tmp_path / "case5", case=5)
    case = load_case(case_dir)
    nx, ny, nz = case.size_xyz
    mask = np.zeros(case.shape_zyx, dtype=np.uint8)  # (z, y, x)
    mask[1:7, 2:10, 0:3] = 1  # x = 0, 1, 2: near the border, all fold
    mask[1:7, 2:10, 8] = 1  # x = 8: the centre, none folds
    image = sitk.GetImageFromArray(mask)
    image.SetSpacing(case.spacing_xyz)
    mask_path = tmp_path / "mask.nii.gz"
    write_image(mask_path, image)
    run_dir = tmp_path / "runs" / "fold" / "case5"
    FoldsNearXBorders(case.size_xyz, case.spacing_xyz).save(run_dir / layout.CHECKPOINT)
    assert _run("evaluate", "--case-dir", str(case_dir), "--run-dir", str(run_dir), "--mask", str(mask_path)) == 0
    z, y, x = np.nonzero(mask)
    u_x = -1 + 2 * x / (nx - 1)
    det = 1 + FoldsNearXBorders.A * np.pi * np.cos(np.pi * u_x)
    folding = _metrics(run_dir)["folding"]
    assert folding["n_points"] == len(x) == 192
    assert folding["count"] == int((det <= 0).sum()) == 144
    assert folding["min_det"] == pytest.approx(det.min(), rel=1e-4)


def test_evaluate_errors_name_the_file(tmp_path, capsys):
    case_dir = make_case(tmp_path / "case1")
    run_dir = tmp_path / "runs" / "x" / "case1"
    assert _run("evaluate", "--case-dir", str(case_dir), "--run-dir", str(run_dir)) == 2
    assert str(run_dir / layout.CHECKPOINT) in capsys.readouterr().err
    case = load_case(case_dir)
    IdentityTransform(case.size_xyz, case.spacing_xyz).save(run_dir / layout.CHECKPOINT)
    write_json(run_dir / layout.RUN_JSON, {"case": 7, "configuration": "x"})
    assert _run("evaluate", "--case-dir", str(case_dir), "--run-dir", str(run_dir)) == 2
    err = capsys.readouterr().err
    assert "run.json" in err and "case 7" in err
    write_json(run_dir / layout.RUN_JSON, {"case": 1, "configuration": "x", "settings": {"pairing": "bogus"}})
    assert _run("evaluate", "--case-dir", str(case_dir), "--run-dir", str(run_dir)) == 2
    assert "pairing" in capsys.readouterr().err
    # A map fitted on another grid is refused.
    (run_dir / layout.RUN_JSON).unlink()
    IdentityTransform((8, 8, 8), case.spacing_xyz).save(run_dir / layout.CHECKPOINT)
    assert _run("evaluate", "--case-dir", str(case_dir), "--run-dir", str(run_dir), "--no-figures") == 2
    err = capsys.readouterr().err
    assert "expected a checkpoint of case 1" in err and "size (8, 8, 8)" in err
    assert not (run_dir / layout.METRICS_JSON).exists()


# -- warping ------------------------------------------------------------------------------------------------
def test_warp_volume_identity_and_one_voxel_shift():
    size, spacing = (7, 6, 5), (1.0, 1.0, 2.5)
    moving = np.random.default_rng(0).normal(size=coords.size_xyz_to_shape_zyx(size)).astype(np.float32)
    np.testing.assert_allclose(
        warp.warp_volume(IdentityTransform(size, spacing), moving, slices_per_chunk=2), moving, atol=1e-5
    )
    # phi(x) = x + 1 voxel in z: warped[z] = moving[z + 1], the last slice clamped to the border.
    shift = AffineTransform(size, spacing, offset=np.array([0.0, 0.0, 2.0 / (size[2] - 1)]))
    warped = warp.warp_volume(shift, moving, slices_per_chunk=3)
    np.testing.assert_allclose(warped[:-1], moving[1:], atol=1e-5)
    np.testing.assert_allclose(warped[-1], moving[-1], atol=1e-5)
    # A slice matches the same slice of the volume, in take_slice's layout.
    coronal = warp.warp_slice(shift, moving, "coronal", 2)
    np.testing.assert_allclose(coronal, warp.take_slice(warped, "coronal", 2), atol=1e-5)
    with pytest.raises(ValueError, match="grid"):
        warp.warp_points(shift, moving[:-1], np.zeros((1, 3)))


def test_slice_geometry_keeps_superior_up_and_mm_aspect():
    mask = np.zeros((10, 8, 6), dtype=bool)
    mask[2:5, 4:7, 1:3] = True
    geom = slice_geometry((6, 8, 10), (0.97, 0.97, 2.5), mask)
    assert geom.index == {"coronal": 5, "axial": 3}  # centre of mass of the mask, rounded
    left, right, bottom, top = geom.extent("coronal")
    assert top < bottom  # z = 0 (most superior DIR-Lab slice) is drawn at the top
    assert (bottom - top) == pytest.approx(10 * 2.5) and (right - left) == pytest.approx(6 * 0.97)


def test_identity_on_the_phantom_reproduces_its_stated_tre(converted_case, phantom_dataset, tmp_path):
    # The phantom states the no-registration TRE of its landmark files (mean, std with ddof = 1), as
    # rnr/DATA.md does for DIR-Lab; reading the converted case and measuring the identity must give it back.
    truth = json.loads((phantom_dataset / "truth" / "case1.json").read_text())
    run_dir = tmp_path / "initial" / "case1"
    mask = converted_case / layout.MASK_PROVIDED
    assert (
        _run(
            "evaluate",
            "--case-dir",
            str(converted_case),
            "--run-dir",
            str(run_dir),
            "--identity",
            "--mask",
            str(mask),
        )
        == 0
    )
    m = _metrics(run_dir)
    mean, std = truth["identity_tre_files_mm"]
    assert m["tre"]["n_landmarks"] == 300
    assert m["tre"]["mean_mm"] == pytest.approx(mean, abs=1e-4)
    assert m["tre"]["std_mm"] == pytest.approx(std, abs=1e-4)
    assert m["tre"]["snapped_mean_mm"] == pytest.approx(mean, abs=1e-9)
    assert m["folding"]["n_points"] == truth["lung_voxels"]
    assert [s["n_landmarks"] for s in m["intermediate"]["steps"]] == [75] * 5
    assert m["files"]["mask"] == str(mask)


def test_loss_log_panels_group_per_term_columns():
    from rnr.evaluation.panels import _loss_panels

    cols = [
        "loss",
        "dissimilarity",
        "grad_penalty",
        "dissimilarity_T50_phi1_vs_T40",
        "dissimilarity_T50_phi2_vs_T30",
    ]
    assert _loss_panels(cols) == [
        ("loss", "", ["loss"]),
        ("dissimilarity", "", ["dissimilarity"]),
        ("grad_penalty", "", ["grad_penalty"]),
        ("dissimilarity per term", "dissimilarity_", cols[3:]),
    ]
