"""Collecting evaluated runs (rnr/reporting/results.py): every configuration needs every case, and a record must
match its folder; anything else is one clear error naming the files, and no table is written."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from evaluation_case import make_runs

from rnr import cli, layout


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory) -> Path:
    return make_runs(tmp_path_factory.mktemp("results"), cases=(1, 2))


def test_missing_and_inconsistent_runs_are_clear_errors(runs_dir, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main(["tables", "--runs-dir", str(empty), "--out", str(tmp_path / "t")]) == 2
    assert "no runs found" in capsys.readouterr().err
    copy = tmp_path / "runs"
    shutil.copytree(runs_dir, copy)
    (copy / "affine_small" / "case2" / layout.METRICS_JSON).unlink()
    shutil.rmtree(copy / "affine_large" / "case1")
    assert cli.main(["tables", "--runs-dir", str(copy), "--out", str(tmp_path / "t")]) == 2
    err = capsys.readouterr().err
    assert str(copy / "affine_small" / "case2" / layout.METRICS_JSON) in err
    assert str(copy / "affine_large" / "case1" / layout.METRICS_JSON) in err
    copy2 = tmp_path / "runs2"
    shutil.copytree(runs_dir, copy2)
    shutil.copytree(copy2 / "affine_small", copy2 / "renamed")
    assert cli.main(["tables", "--runs-dir", str(copy2), "--out", str(tmp_path / "t")]) == 2
    assert "expected configuration 'renamed'" in capsys.readouterr().err
    assert not (tmp_path / "t").exists()
