"""Registering one case (rnr/registration.py) and its run folder (rnr/fitting/rundir.py)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from rnr import layout
from rnr.config import Settings
from rnr.data.case import load_case
from rnr.fitting.fit import FitError
from rnr.fitting.network import ResNetTransform
from rnr.io import read_csv, read_json, write_image
from rnr.methods.settings import settings_for_method, settings_from_mapping
from rnr.methods.table import load_transform
from rnr.registration import register_case


def rnr_settings(**overrides) -> Settings:
    return settings_for_method("rnr", **overrides)


def test_register_writes_the_run_folder(case, mask, tmp_path, one_thread):
    out = tmp_path / "run"
    out.mkdir()
    (out / layout.RUN_JSON).write_text("{}")  # stale output of an earlier run: must be replaced
    settings = rnr_settings(iterations=5, batch_size=300, width=16, sampling="cycle")
    result = register_case(case, mask, settings, out, name="tiny", progress=False)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [layout.CHECKPOINT, layout.LOSS_CSV, layout.WARPED_LANDMARKS, layout.RUN_JSON]
    )
    run = read_json(out / layout.RUN_JSON)
    for key in (
        "case",
        "configuration",
        "method",
        "settings",
        "device",
        "wall_s",
        "iterations",
        "iterations_per_s",
        "batch_size",
        "n_points",
        "peak_memory_mb",
        "versions",
    ):
        assert key in run, key
    assert run["case"] == case.case and run["configuration"] == "tiny" and run["method"] == "rnr"
    assert settings_from_mapping(run["settings"]) == settings
    assert run["iterations"] == 5 and run["batch_size"] == 300
    assert run["n_points"] == int(mask.sum()) and run["device"] == "cpu" and run["peak_memory_mb"] > 0
    assert run["iterations_per_s"] == pytest.approx(5 / run["wall_s"])
    loss = read_csv(
        out / layout.LOSS_CSV, ["iteration", "loss", "dissimilarity", "grad_penalty", "weight_penalty", "elapsed_s"]
    )
    assert len(loss) == 5 and np.isfinite(loss["loss"]).all()
    warped = read_csv(out / layout.WARPED_LANDMARKS, layout.LANDMARK_COLUMNS)
    assert list(warped.columns) == list(layout.LANDMARK_COLUMNS) and len(warped) == 300
    vox = warped[["x_vox", "y_vox", "z_vox"]].to_numpy()
    np.testing.assert_allclose(warped[["x_mm", "y_mm", "z_mm"]].to_numpy(), vox * np.array(case.spacing_xyz))
    np.testing.assert_allclose(vox, result.warped_landmarks)
    transform, meta = load_transform(out / layout.CHECKPOINT, "cpu")
    assert isinstance(transform, ResNetTransform) and transform.n_steps == 5
    assert meta["case"] == case.case and meta["configuration"] == "tiny" and meta["seed"] == 3
    assert settings_from_mapping(meta["settings"]) == settings
    assert meta["geometry"]["size_xyz"] == list(case.size_xyz)
    np.testing.assert_allclose(transform.apply_voxels(case.landmarks("T00")), vox, atol=1e-5)
    assert not np.allclose(vox, case.landmarks("T00"), atol=1e-3)


def test_non_finite_loss_stops_with_a_clear_error_and_writes_nothing(case, mask, tmp_path):
    broken = tmp_path / "case"
    shutil.copytree(case.path, broken)
    t50 = sitk.ReadImage(str(case.image_path("T50")))
    arr = sitk.GetArrayFromImage(t50).astype(np.float32)
    # Intensities whose squares overflow float32 (NIfTI readers turn inf and NaN voxels into 0).
    arr[:] = 3e38
    arr[..., ::2] = -3e38
    image = sitk.GetImageFromArray(arr)
    image.CopyInformation(t50)
    write_image(broken / layout.image_name("T50"), image)
    out = tmp_path / "run"
    with pytest.raises(FitError, match=r"case 1 / mine \(rnr\).*not finite.*iteration 1 of 3"):
        register_case(
            load_case(broken),
            mask,
            rnr_settings(iterations=3, batch_size=100, width=8),
            out,
            name="mine",
            progress=False,
        )
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.slow  # six `rnr register` processes: about 20 s per thread count
@pytest.mark.parametrize("threads", ["1", "2"])
def test_the_same_seed_gives_the_same_map_in_two_fresh_processes(converted_case, tmp_path, threads):
    """Determinism on the CPU: two `rnr register` processes with the same seed, thread count and machine write
    the same warped landmarks (TRE equal to 1e-6 mm); another seed gives another map."""
    import os
    import subprocess
    import sys

    import pandas as pd

    mask = converted_case / layout.MASK_PROVIDED
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    warped = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        out = tmp_path / name
        argv = [sys.executable, "-m", "rnr.cli", "register", "--case-dir", str(converted_case), "--out", str(out)]
        argv += ["--mask", str(mask), "--no-progress", "--set", "iterations=8", "--set", "batch_size=1000"]
        argv += ["--set", "width=32", "--set", f"seed={seed}"]
        result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
        assert result.returncode == 0, result.stderr
        warped[name] = pd.read_csv(out / layout.WARPED_LANDMARKS)[["x_mm", "y_mm", "z_mm"]].to_numpy()
    assert np.abs(warped["a"] - warped["b"]).max() <= 1e-6
    assert np.abs(warped["a"] - warped["c"]).max() > 1e-3
