"""``rnr tables`` on metrics written by real ``rnr evaluate`` runs (identity and affine checkpoints)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from evaluation_case import AFFINE_CONFIGS, make_runs

from rnr import cli, layout
from rnr.results import CONTRACT_COLUMNS, TRE_LANDMARK_COLUMNS
from rnr.tables import TABLES

CONFIGS = ["initial", *sorted(AFFINE_CONFIGS)]


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory) -> Path:
    return make_runs(tmp_path_factory.mktemp("results"), cases=(1, 2))


@pytest.fixture(scope="module")
def tables(runs_dir) -> Path:
    out = runs_dir.parent / "tables"
    assert cli.main(["tables", "--runs-dir", str(runs_dir), "--out", str(out)]) == 0
    return out


def _metrics(runs_dir: Path, config: str, case: int) -> dict:
    return json.loads((runs_dir / config / f"case{case}" / layout.METRICS_JSON).read_text())


def test_tre_csv_has_the_contract_columns_and_one_row_per_case_and_configuration(tables, runs_dir):
    frame = pd.read_csv(tables / "tre.csv")
    assert list(frame.columns[: len(CONTRACT_COLUMNS)]) == list(CONTRACT_COLUMNS)
    assert len(frame) == 2 * len(CONFIGS)
    assert sorted(zip(frame["case"], frame["configuration"], strict=True)) == sorted(
        (n, c) for n in (1, 2) for c in CONFIGS
    )
    assert list(dict.fromkeys(frame["configuration"])) == CONFIGS  # initial first
    row = frame[(frame["case"] == 2) & (frame["configuration"] == "affine_large")].iloc[0]
    m = _metrics(runs_dir, "affine_large", 2)
    assert row["tre_mean_mm"] == pytest.approx(m["tre"]["mean_mm"])
    assert row["tre_z_mm"] == pytest.approx(m["tre"]["z_mm"])
    assert row["tre_snapped_mean_mm"] == pytest.approx(m["tre"]["snapped_mean_mm"])
    assert (row["runtime_s"], row["device"]) == (9.0, "cpu")
    initial = frame[frame["configuration"] == "initial"]
    assert (initial["runtime_s"] == 0).all() and (initial["device"] == "none").all()
    assert (initial["folding_fraction"] == 0).all()


def _md_rows(text: str) -> dict[str, list[str]]:
    rows = {}
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("| case"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


def test_tre_md_is_the_thesis_table(tables):
    text = (tables / "tre.md").read_text()
    assert "| case | " + " | ".join(CONFIGS) + " |" in text
    rows = _md_rows(text)
    assert list(rows) == ["1", "2", "mean"]
    frame = pd.read_csv(tables / "tre.csv")
    for case in (1, 2):
        for config, cell in zip(CONFIGS, rows[str(case)], strict=True):
            r = frame[(frame["case"] == case) & (frame["configuration"] == config)].iloc[0]
            assert cell.strip("*") == f"{r['tre_mean_mm']:.2f} ± {r['tre_std_mm']:.2f}"
        # Bold: the lowest mean among the registered configurations (never initial).
        registered = {
            c: frame[(frame["case"] == case) & (frame["configuration"] == c)]["tre_mean_mm"].iloc[0]
            for c in CONFIGS[1:]
        }
        best = min(registered, key=registered.get)
        assert [c.startswith("**") for c in rows[str(case)]] == [c == best for c in CONFIGS]
    means = frame.groupby("configuration")["tre_mean_mm"].mean()
    assert [c.strip("*") for c in rows["mean"]] == [f"{means[c]:.2f}" for c in CONFIGS]
    for phrase in (
        "continuous TRE",
        "0-based",
        "ddof = 1",
        "mean over cases of the per-case means",
        "20 landmarks",
    ):
        assert phrase in text


def test_tex_snapped_folding_and_landmark_tables(tables):
    tex = (tables / "tre.tex").read_text()
    assert r"\toprule" in tex and r"$\pm$" in tex and r"affine\_large" in tex and r"\textbf{" in tex
    assert tex.count(r"\\") == 1 + 2 + 1  # header, two cases, mean
    snapped = (tables / "tre_snapped.md").read_text()
    assert "snapped TRE" in snapped and "nearest voxel" in snapped
    frame = pd.read_csv(tables / "tre.csv")
    snapped_rows = _md_rows(snapped)
    r = frame[(frame["case"] == 1) & (frame["configuration"] == "affine_small")].iloc[0]
    assert (
        snapped_rows["1"][CONFIGS.index("affine_small")].strip("*")
        == f"{r['tre_snapped_mean_mm']:.2f} ± {r['tre_snapped_std_mm']:.2f}"
    )
    folding = pd.read_csv(tables / "folding.csv")
    assert {"case", "configuration", "folding_percent", "min_det", "runtime_s", "device"} <= set(folding.columns)
    assert folding.loc[folding["configuration"] == "affine_large", "min_det"].to_numpy() == pytest.approx(0.9)
    assert "| 1 | affine_large |" in (tables / "folding.md").read_text()
    landmarks = pd.read_csv(tables / "tre_landmarks.csv")
    assert list(landmarks.columns) == list(TRE_LANDMARK_COLUMNS)
    assert len(landmarks) == int(frame["n_landmarks"].sum())
    per_case = landmarks.groupby(["case", "configuration"])["tre_mm"].mean()
    np.testing.assert_allclose(
        per_case.loc[(2, "initial")],
        frame.set_index(["case", "configuration"]).loc[(2, "initial"), "tre_mean_mm"],
    )


def test_configuration_selection_and_order(runs_dir, tmp_path):
    out = tmp_path / "tables"
    assert (
        cli.main(
            [
                "tables",
                "--runs-dir",
                str(runs_dir),
                "--out",
                str(out),
                "--configurations",
                "affine_small",
                "initial",
            ]
        )
        == 0
    )
    text = (out / "tre.md").read_text()
    assert "| case | initial | affine_small |" in text
    assert "**" not in text.split("\n\n")[1]  # one registered configuration: nothing to single out


def test_a_run_without_runtime_reads_n_a(runs_dir, tmp_path):
    copy = tmp_path / "runs"
    shutil.copytree(runs_dir, copy)
    path = copy / "affine_small" / "case1" / layout.METRICS_JSON
    record = json.loads(path.read_text())
    record["runtime_s"] = None  # what evaluate writes when a checkpoint has no run record
    path.write_text(json.dumps(record))
    out = tmp_path / "tables"
    assert cli.main(["tables", "--runs-dir", str(copy), "--out", str(out)]) == 0
    assert "| 1 | affine_small |" in (out / "folding.md").read_text()
    line = next(x for x in (out / "folding.md").read_text().splitlines() if x.startswith("| 1 | affine_small |"))
    assert "| n/a |" in line
    frame = pd.read_csv(out / "tre.csv")
    assert frame.loc[(frame["case"] == 1) & (frame["configuration"] == "affine_small"), "runtime_s"].isna().all()


def test_tables_writes_exactly_the_listed_files(tables):
    assert sorted(p.name for p in tables.iterdir()) == sorted(TABLES.values())
