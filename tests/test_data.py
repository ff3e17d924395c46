"""The dataset table (rnr.data.DATASETS): every entry holds to the contract of rnr/data/base.py, the schema
and the commands take datasets from the table, and the two entries agree with their readers and docs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from rnr import layout
from rnr.cli import main as rnr_main
from rnr.data import DATASETS, phantom
from rnr.data.case import load_case
from rnr.data.dirlab import NO_REGISTRATION_TRE_MM
from rnr.data.dirlab_reader import DIRLAB_GEOMETRY

REPO = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())


@pytest.mark.parametrize("name", list(DATASETS))
def test_every_entry_holds_to_the_contract(name):
    d = DATASETS[name]
    assert d.name == name and d.summary
    assert d.cases and list(d.cases) == sorted(set(d.cases)) and all(c >= 1 for c in d.cases)
    assert d.phases[0] == "T00" and set(d.phases) <= set(layout.PHASES)
    assert list(d.phases) == [p for p in layout.PHASES if p in d.phases]  # inhale first, in breathing order
    assert d.landmark_phases == ("T00", "T50") and set(d.landmark_phases) <= set(d.phases)
    for case in d.cases:
        size, spacing = d.geometry(case)
        assert len(size) == 3 and min(size) >= 2 and len(spacing) == 3 and min(spacing) > 0
    assert set(d.no_registration_tre_mm) <= set(d.cases)
    if d.source_key is not None:
        # The schema accepts the folder key without naming the dataset: a new dataset needs no schema change.
        pattern = next(iter(SCHEMA["patternProperties"]))
        assert d.source_key == f"{name}_dir" and re.fullmatch(pattern, d.source_key)
        assert d.source_description and not d.generated
    with pytest.raises(ValueError, match=f"dataset '{name}'"):
        d.check_case(max(d.cases) + 1, "here")


def test_the_schema_names_no_dataset_and_no_case_range():
    """Datasets and their case lists live in the table only (rnr.plan checks both)."""
    assert "enum" not in SCHEMA["properties"]["dataset"]
    assert "maximum" not in SCHEMA["properties"]["cases"]["items"]


def test_case_lists_come_from_the_readers():
    assert DATASETS["dirlab"].cases == tuple(sorted(DIRLAB_GEOMETRY))
    assert DATASETS["phantom"].cases == tuple(sorted(phantom.PHANTOM_GEOMETRY))
    assert DATASETS["phantom"].generated and DATASETS["phantom"].no_registration_tre_mm == {}
    for case in DATASETS["dirlab"].cases:
        assert DATASETS["dirlab"].geometry(case) == (DIRLAB_GEOMETRY[case].size_xyz, DIRLAB_GEOMETRY[case].spacing_xyz)


def test_published_no_registration_tre_matches_the_docs_and_the_phantom_targets():
    """rnr/DATA.md's table, the dirlab entry and the phantom's calibration targets are one table."""
    text = (REPO / "rnr" / "DATA.md").read_text()
    block = text.split("### No-registration TRE", 1)[1]
    row = next(line for line in block.splitlines() if line.startswith("|") and "±" in line)
    cells = [c.strip() for c in row.strip("|").split("|")][:-1]  # the last cell is the mean
    documented = {i + 1: tuple(float(v) for v in cell.split("±")) for i, cell in enumerate(cells)}
    assert documented == NO_REGISTRATION_TRE_MM
    for case, (mean, std) in NO_REGISTRATION_TRE_MM.items():
        assert phantom.TARGET_IDENTITY_TRE_MM[case] == mean and phantom.TARGET_IDENTITY_STD_MM[case] == std


@pytest.mark.parametrize("name", ["phantom", "dirlab"])
def test_rnr_convert_takes_the_dataset_from_the_table(name, phantom_dataset, tmp_path, capsys):
    """Both entries convert a folder in DIR-Lab's layout (the phantom's), by `rnr convert --dataset`."""
    out = tmp_path / "case1"
    args = ["convert", "--dataset", name, "--source", str(phantom_dataset), "--case", "1", "--out", str(out)]
    assert rnr_main(args) == 0
    assert "case 1:" in capsys.readouterr().out
    case = load_case(out)
    assert case.case == 1 and tuple(case.phases) == DATASETS[name].phases


def test_rnr_convert_refuses_an_unknown_dataset(tmp_path, capsys):
    with pytest.raises(SystemExit):
        rnr_main(["convert", "--dataset", "copd", "--source", str(tmp_path), "--case", "1", "--out", str(tmp_path)])
    assert "invalid choice: 'copd'" in capsys.readouterr().err


def test_a_new_dataset_needs_its_module_and_one_table_entry(phantom_dataset, tmp_path, monkeypatch, capsys):
    """rnr/README.md, "Adding a dataset", exercised: an entry made here (DIR-Lab's converter under a new name,
    folder key and case list) is all the plan, the schema and `rnr convert` need; nothing else is edited."""
    import dataclasses

    from rnr.plan import make_plan

    toy = dataclasses.replace(
        DATASETS["dirlab"], name="toy", title="toy 4DCT", source_key="toy_dir", cases=(1, 2), no_registration_tre_mm={}
    )
    monkeypatch.setitem(DATASETS, "toy", toy)
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config.update(dataset="toy", toy_dir=str(phantom_dataset), cases=[2])
    plan = make_plan(config, REPO / "workflow" / "schemas" / "config.schema.yaml")
    assert (plan.dataset.name, plan.cases, plan.source_dir) == ("toy", (2,), str(phantom_dataset))
    assert plan.case_file(layout.CASE_JSON) == "results/toy/data/case{case}/" + layout.CASE_JSON
    with pytest.raises(ValueError, match="dataset 'toy'"):
        make_plan({**config, "cases": [3]}, REPO / "workflow" / "schemas" / "config.schema.yaml")

    out = tmp_path / "case2"
    args = ["convert", "--dataset", "toy", "--source", str(phantom_dataset), "--case", "2", "--out", str(out)]
    assert rnr_main(args) == 0
    assert load_case(out).case == 2
