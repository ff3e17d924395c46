"""The method table (rnr/methods/table.py): every method is listed once with its settings and transforms, and
a new method plugs in with one module, its settings block and two table entries (rnr/README.md, "Adding a
method")."""

from __future__ import annotations

import json

import numpy as np
import pytest
import toy_method

from rnr import layout
from rnr.cli import main
from rnr.config import field_names
from rnr.data.case import load_case
from rnr.evaluation import metrics
from rnr.methods.identity import IdentitySettings
from rnr.methods.settings import SETTINGS, settings_for_method
from rnr.methods.table import METHODS, transform_kinds


def test_the_table_lists_every_method_once_with_unique_transform_kinds():
    assert list(METHODS) == ["rnr", "idir", "demons", "identity", "field", "elastix", "ants", "command"]
    assert all(m.name == name for name, m in METHODS.items())
    kinds = transform_kinds()
    assert {"rnr", "idir", "demons", "identity", "field", "elastix", "ants", "command", "affine"} <= set(kinds)
    for method in METHODS.values():
        assert method.summary and method.transforms
        assert field_names(method.settings) == list(method.settings().__dict__)  # every key has a default


def test_the_settings_table_names_the_same_blocks_as_the_method_table():
    """rnr/methods/settings.py holds the blocks apart from the methods (the plan reads them without torch);
    both tables must name the same class for every method."""
    assert {name: m.settings for name, m in METHODS.items()} == SETTINGS


def test_identity_method_has_no_keys_and_registers_like_any_method(converted_case, tmp_path, capsys):
    assert settings_for_method("identity").params == IdentitySettings()
    out = tmp_path / "run"
    assert (
        main(
            [
                "register",
                "--case-dir",
                str(converted_case),
                "--out",
                str(out),
                "--set",
                "method=identity",
                "--name",
                "none",
                "--no-progress",
                "--mask",
                str(converted_case / layout.MASK_PROVIDED),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "evaluate",
                "--case-dir",
                str(converted_case),
                "--run-dir",
                str(out),
                "--no-figures",
                "--mask",
                str(converted_case / layout.MASK_PROVIDED),
            ]
        )
        == 0
    )
    record = json.loads((out / layout.METRICS_JSON).read_text())
    case = load_case(converted_case)
    expected = np.linalg.norm((case.landmarks("T00") - case.landmarks("T50")) * case.spacing_xyz, axis=1).mean()
    assert record["tre"]["mean_mm"] == pytest.approx(expected, rel=1e-5)  # float32 normalised coordinates
    assert record["folding"]["count"] == 0 and record["folding"]["min_det"] == pytest.approx(1.0)


def test_a_new_method_needs_one_module_and_its_table_entries(converted_case, tmp_path, monkeypatch, capsys):
    """The README's "Adding a method", exercised: tests/toy_method.py plus its entries in METHODS and SETTINGS
    (its settings block is defined in the module here, which the README's settings.py would hold) runs through
    `rnr register` and `rnr evaluate` (checkpoint round trip included) and is scored like any method."""
    monkeypatch.setitem(METHODS, "toy", toy_method.METHOD)
    monkeypatch.setitem(SETTINGS, "toy", toy_method.ShiftSettings)
    mask = str(converted_case / layout.MASK_PROVIDED)
    out = tmp_path / "run"
    argv = ["register", "--case-dir", str(converted_case), "--out", str(out), "--mask", mask, "--name", "toy"]
    assert main([*argv, "--set", "method=toy", "--set", "shift_vox=[0.5, -1, 2]", "--no-progress"]) == 0
    assert main(["evaluate", "--case-dir", str(converted_case), "--run-dir", str(out), "--mask", mask]) == 0
    record = json.loads((out / layout.METRICS_JSON).read_text())
    assert (record["configuration"], record["method"], record["transform_kind"]) == ("toy", "toy", "toy-shift")
    case = load_case(converted_case)
    shifted = case.landmarks("T00") + np.array([0.5, -1.0, 2.0])
    expected = metrics.tre(shifted, case.landmarks("T50"), case.spacing_xyz)
    assert record["tre"]["mean_mm"] == pytest.approx(expected.mean_mm, rel=1e-6)
    assert record["folding"]["count"] == 0
    # A key of another method is refused, naming its owner.
    capsys.readouterr()
    assert main([*argv, "--set", "method=toy", "--set", "lr=0.1"]) == 2
    assert "setting 'lr' belongs to method rnr/idir, not toy" in capsys.readouterr().err
