"""``rnr figures`` (seaborn, PNG + PDF) on metrics written by real ``rnr evaluate`` runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from evaluation_case import make_runs

from rnr import cli

FIGURES = ("tre_distribution", "tre_mean_per_configuration", "tre_before_after", "folding_runtime")


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory) -> Path:
    return make_runs(tmp_path_factory.mktemp("results"), cases=(1, 2, 3))


def test_figures_are_real_png_and_pdf_files(runs_dir, tmp_path):
    out = tmp_path / "figures"
    assert cli.main(["figures", "--runs-dir", str(runs_dir), "--out", str(out)]) == 0
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted(f"{name}.{ext}" for name in FIGURES for ext in ("png", "pdf"))
    for name in FIGURES:
        png, pdf = (out / f"{name}.png").read_bytes(), (out / f"{name}.pdf").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000, name
        assert pdf[:5] == b"%PDF-" and len(pdf) > 5_000, name


def test_figures_of_a_subset_and_errors(runs_dir, tmp_path, capsys):
    out = tmp_path / "subset"
    assert (
        cli.main(["figures", "--runs-dir", str(runs_dir), "--out", str(out), "--configurations", "affine_small"]) == 0
    )
    assert (out / "folding_runtime.png").stat().st_size > 10_000
    assert cli.main(["figures", "--runs-dir", str(runs_dir), "--out", str(out), "--configurations", "nonexistent"]) == 2
    assert "nonexistent" in capsys.readouterr().err
    assert cli.main(["figures", "--runs-dir", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert "runs folder not found" in capsys.readouterr().err
