"""``rnr export`` (rnr/evaluation/export.py), checked by an outside reader: SimpleITK alone, on the exported files, must
reproduce what ``rnr register`` wrote (the warped landmarks) and the project's own warped images, for RNR,
IDIR and demons runs; and an exported field scored as ``method: field`` gives the run's TRE back.

Tolerances (derived, not tuned):

* Landmarks, 0.01 mm (the issue's figure). DIR-Lab (and phantom) landmarks are whole voxels, where
  ``DisplacementFieldTransform`` returns the stored vector itself (linear interpolation between voxel
  centres); the stored vector is the project's own phi(x) - x in float32, so the two agree to float32
  rounding (about 1e-6 mm here).
* Warped images, ``3 * L * delta`` HU: both sides interpolate the same T50 voxels trilinearly at the same
  continuous index, computed in different precision. The project computes the sampling position in float32
  normalised coordinates (about four roundings of relative size eps = 2^-23 on values up to n voxels), and
  the field is stored in float32, so the two positions differ by at most delta = eps * (8 n_max + |d|_max)
  voxels per axis (a factor two over the count). A trilinear interpolant changes by at most L * delta per
  axis, L the largest difference between neighbouring T50 voxels along any axis (HU per voxel), hence at
  most 3 L delta over three axes. Compared where ITK has a value: it gives the default value (NaN here) when
  phi(x) leaves the image, where the project clamps to the edge value; ITK must have a value at least
  wherever phi(x) lies inside the voxel grid.
* Round trip: TRE within 0.01 mm (same vectors at the landmarks, as above). det J differs by the
  discretisation: the field's det J comes from central differences with a one-voxel step h, RNR's from the
  closed form. Central differences err by O(h^2), so the error at step h is about a quarter of the error at
  step 2h, which the test measures on the same field; SDlogJ must be within half of that (the predicted
  quarter, a factor two margin). Folding fractions may differ only at voxels whose det J lies within the
  largest det J difference of zero.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from rnr import coords, layout
from rnr.cli import main
from rnr.data.case import load_case
from rnr.evaluation import metrics
from rnr.evaluation.export import field_step_name, warped_name
from rnr.layout import DETJ, FIELD, MANIFEST
from rnr.methods.table import load_transform
from rnr.reporting.tables import TABLES, write_tables

pytestmark = pytest.mark.slow

RUNS = {
    "rnr": ["iterations=5", "width=16", "batch_size=500"],
    "idir": ["method=idir", "iterations=5", "idir_width=16", "batch_size=500"],
    "demons": ["method=demons", "demons_iterations=[3, 2, 1]"],
}
EPS32 = float(np.finfo(np.float32).eps)


@pytest.fixture(scope="module")
def exported(converted_case, tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """configuration -> (run folder, export folder) for tiny RNR, IDIR and demons runs on the phantom case."""
    root = tmp_path_factory.mktemp("export")
    mask = str(converted_case / layout.MASK_PROVIDED)
    out = {}
    for name, settings in RUNS.items():
        run = root / "runs" / name / "case1"
        sets = [a for s in settings for a in ("--set", s)]
        argv = ["register", "--case-dir", str(converted_case), "--out", str(run), "--mask", mask, "--name", name]
        assert main([*argv, *sets, "--no-progress"]) == 0
        dest = root / "export" / name / "case1"
        assert main(["export", "--case-dir", str(converted_case), "--run-dir", str(run), "--out", str(dest)]) == 0
        out[name] = (run, dest)
    return out


# ------------------------------------------------------------------------------- the outside reader
def _world(image: sitk.Image, index_xyz: np.ndarray) -> np.ndarray:
    return np.array([image.TransformContinuousIndexToPhysicalPoint(p.tolist()) for p in index_xyz])


def _transform(field_path: Path) -> sitk.DisplacementFieldTransform:
    return sitk.DisplacementFieldTransform(sitk.Cast(sitk.ReadImage(str(field_path)), sitk.sitkVectorFloat64))


def _resample_check(case_dir: Path, field_path: Path, warped_path: Path, moving: str = "T50") -> float:
    """Compare sitk.Resample(moving, T00, field) with the exported warped image; return the compared fraction."""
    t00 = sitk.ReadImage(str(case_dir / "T00.nii.gz"))
    mov = sitk.Cast(sitk.ReadImage(str(case_dir / f"{moving}.nii.gz")), sitk.sitkFloat32)
    itk = sitk.GetArrayFromImage(sitk.Resample(mov, t00, _transform(field_path), sitk.sitkLinear, np.nan))
    own = sitk.GetArrayFromImage(sitk.ReadImage(str(warped_path)))
    # Where phi(x) lies inside the grid (the field read back into index space by the reader's own arithmetic).
    field = sitk.GetArrayFromImage(sitk.ReadImage(str(field_path))).astype(np.float64)
    direction = np.asarray(t00.GetDirection()).reshape(3, 3)
    spacing = np.asarray(t00.GetSpacing())
    d_vox = field @ np.linalg.inv(direction).T / spacing
    nz, ny, nx = own.shape
    z, y, x = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    mapped = np.stack([x, y, z], axis=-1) + d_vox
    inside = np.all((mapped >= 0) & (mapped <= np.array([nx, ny, nz]) - 1), axis=-1)
    compared = np.isfinite(itk)
    assert compared[inside].all(), "ITK gave no value at points that phi maps inside the image"
    values = sitk.GetArrayFromImage(mov)
    lipschitz = max(float(np.abs(np.diff(values, axis=a)).max()) for a in range(3))
    delta = EPS32 * (8 * max(nx, ny, nz) + float(np.abs(d_vox).max()))
    tolerance = 3 * lipschitz * delta
    worst = float(np.abs(itk - own)[compared].max())
    assert worst <= tolerance, (field_path, worst, tolerance)
    return float(compared.mean())


@pytest.mark.parametrize("name", list(RUNS))
def test_sitk_alone_reproduces_the_warped_landmarks_and_images(exported, converted_case, name):
    run, dest = exported[name]
    t00 = sitk.ReadImage(str(converted_case / "T00.nii.gz"))
    transform = _transform(dest / FIELD)
    landmarks = pd.read_csv(converted_case / "landmarks_T00.csv")[["x_vox", "y_vox", "z_vox"]].to_numpy()
    warped = pd.read_csv(run / "landmarks_T00_warped.csv")[["x_vox", "y_vox", "z_vox"]].to_numpy()
    mapped = np.array([transform.TransformPoint(p.tolist()) for p in _world(t00, landmarks)])
    np.testing.assert_allclose(mapped, _world(t00, warped), rtol=0, atol=0.01)
    fraction = _resample_check(converted_case, dest / FIELD, dest / warped_name("T50"))
    if name != "idir":  # five IDIR iterations from SIREN's random start push much of the grid outside
        assert fraction > 0.95


def test_every_step_of_a_stepped_map_is_exported_and_consistent(exported, converted_case):
    """RNR's phi_1..phi_4: field_step{n} maps the landmarks as the checkpoint's phi_n does, and resamples T50 to
    the exported warped_T50_step{n} (seed pairing: T50 is the moving image of every step)."""
    run, dest = exported["rnr"]
    phi, _ = load_transform(run / layout.CHECKPOINT)
    case = load_case(converted_case)
    t00 = sitk.ReadImage(str(converted_case / "T00.nii.gz"))
    manifest = json.loads((dest / MANIFEST).read_text())
    assert manifest["n_steps"] == phi.n_steps == 5 and manifest["pairing"] == "seed"
    for n in range(1, phi.n_steps):
        transform = _transform(dest / field_step_name(n))
        mapped = np.array([transform.TransformPoint(p.tolist()) for p in _world(t00, case.landmarks("T00"))])
        np.testing.assert_allclose(mapped, _world(t00, phi.apply_voxels(case.landmarks("T00"), step=n)), atol=0.01)
        _resample_check(converted_case, dest / field_step_name(n), dest / warped_name("T50", n))
    assert not (dest / field_step_name(phi.n_steps)).exists()  # phi_5 is field.nii.gz


@pytest.mark.parametrize("name", list(RUNS))
def test_files_lie_on_the_t00_grid_and_the_manifest_lists_them(exported, converted_case, name):
    run, dest = exported[name]
    t00 = sitk.ReadImage(str(converted_case / "T00.nii.gz"))
    manifest = json.loads((dest / MANIFEST).read_text())
    assert (manifest["schema"], manifest["configuration"], manifest["case"]) == ("rnr-export/1", name, 1)
    listed = [f["file"] for f in manifest["files"]]
    assert sorted(listed + [MANIFEST]) == sorted(p.name for p in dest.iterdir())
    for file in listed:
        image = sitk.ReadImage(str(dest / file))
        assert image.GetSize() == t00.GetSize() and image.GetDirection() == t00.GetDirection()
        np.testing.assert_allclose(image.GetSpacing(), t00.GetSpacing(), rtol=1e-6)
        np.testing.assert_allclose(image.GetOrigin(), t00.GetOrigin(), atol=1e-6)
        expected = sitk.sitkVectorFloat32 if file.startswith("field") else sitk.sitkFloat32
        assert image.GetPixelID() == expected, file
    # det J of the map at the mask voxels, as the project computes it.
    phi, _ = load_transform(run / layout.CHECKPOINT)
    mask = load_case(converted_case).load_mask(converted_case / layout.MASK_PROVIDED)
    detj = sitk.GetArrayFromImage(sitk.ReadImage(str(dest / DETJ)))
    np.testing.assert_allclose(detj[mask], phi.jacobian_det_voxels(coords.mask_points(mask)), rtol=1e-5)


def test_export_errors_name_the_file(exported, converted_case, tmp_path, capsys):
    argv = ["export", "--case-dir", str(converted_case), "--out", str(tmp_path / "x")]
    assert main([*argv, "--run-dir", str(tmp_path / "nothing")]) == 2
    assert f"{tmp_path / 'nothing' / layout.CHECKPOINT}: checkpoint not found" in capsys.readouterr().err
    run = tmp_path / "other_case"
    shutil.copytree(exported["demons"][0], run)
    record = json.loads((run / layout.RUN_JSON).read_text())
    (run / layout.RUN_JSON).write_text(json.dumps({**record, "case": 2}))
    assert main([*argv, "--run-dir", str(run)]) == 2
    assert "run record is for case 2" in capsys.readouterr().err
    assert not (tmp_path / "x" / MANIFEST).exists()


# ------------------------------------------------------------------------------- the round trip
def test_an_exported_field_scored_as_method_field_gives_the_run_back(exported, converted_case, tmp_path, capsys):
    run, dest = exported["rnr"]
    mask_path = str(converted_case / layout.MASK_PROVIDED)
    runs = tmp_path / "runs"
    shutil.copytree(run, runs / "rnr" / "case1")
    pattern = str(dest.parent / "case{case}" / FIELD)
    field_run = runs / "rnr_field" / "case1"
    argv = ["register", "--case-dir", str(converted_case), "--out", str(field_run), "--mask", mask_path]
    assert main([*argv, "--name", "rnr_field", "--set", "method=field", "--set", f"fields={pattern}"]) == 0
    for name in ("rnr", "rnr_field"):
        argv = ["evaluate", "--case-dir", str(converted_case), "--run-dir", str(runs / name / "case1")]
        assert main([*argv, "--mask", mask_path, "--no-figures"]) == 0
    rec = {n: json.loads((runs / n / "case1" / layout.METRICS_JSON).read_text()) for n in ("rnr", "rnr_field")}
    assert rec["rnr_field"]["tre"]["mean_mm"] == pytest.approx(rec["rnr"]["tre"]["mean_mm"], abs=0.01)
    per = [np.array([p["tre_mm"] for p in r["tre"]["per_landmark"]]) for r in rec.values()]
    np.testing.assert_allclose(per[0], per[1], atol=0.01)

    # det J: closed form (RNR) against central differences of the field, step h and (measured) step 2h.
    # Compared on the mask voxels at least 2 voxels from the border, where both difference steps stay inside
    # the grid (the phantom's lungs reach the first and last slices at the test scale).
    mask = load_case(converted_case).load_mask(mask_path)
    interior = np.zeros_like(mask)
    interior[2:-2, 2:-2, 2:-2] = mask[2:-2, 2:-2, 2:-2]
    points = coords.mask_points(interior)
    phi, _ = load_transform(run / layout.CHECKPOINT)
    field, _ = load_transform(field_run / layout.CHECKPOINT)
    exact, step_h = phi.jacobian_det_voxels(points), field.jacobian_det_voxels(points)
    z, y, x = np.nonzero(interior)
    assert len(z) > 1000, "too few interior mask voxels for the comparison"
    disp = field.displacement_voxels()  # (nz, ny, nx, 3)
    grads = [(np.roll(disp, -2, axis=a) - np.roll(disp, 2, axis=a)) / 4 for a in (2, 1, 0)]  # d/dx, d/dy, d/dz
    step_2h = np.linalg.det(np.eye(3) + np.stack(grads, axis=-1)[z, y, x])
    sd = {k: metrics.sdlogj(v) for k, v in (("exact", exact), ("h", step_h), ("2h", step_2h))}
    err_h, err_2h = abs(sd["h"] - sd["exact"]), abs(sd["2h"] - sd["exact"])
    assert sd["exact"] > 0.005  # the map is not trivially smooth: the comparison means something
    assert err_h <= err_2h / 2, sd
    folding = {n: r["folding"]["fraction"] for n, r in rec.items()}
    near_zero = np.mean(np.abs(exact) <= np.abs(step_h - exact).max())
    assert abs(folding["rnr"] - folding["rnr_field"]) <= near_zero

    # In the tables the field row sits next to the run it came from, with the same TRE.
    write_tables(runs, tmp_path / "tables")
    frame = pd.read_csv(tmp_path / "tables" / TABLES["tre_csv"]).set_index("configuration")
    assert frame.loc["rnr_field", "tre_mean_mm"] == pytest.approx(frame.loc["rnr", "tre_mean_mm"], abs=0.01)
    table = (tmp_path / "tables" / TABLES["tre_md"]).read_text()
    assert "rnr_field" in table
