"""rnr.reporting.table_specs: the one registry of the tables. The README's lists are generated from it, the report's
captions come from it, the frames the tables write have exactly its columns, and rule files can import it
without the heavy packages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from rnr.reporting import results, stats
from rnr.reporting.table_specs import (
    CAPTIONS,
    HTML_TABLES,
    STATS,
    TABLE_SPECS,
    TABLES,
    TRE_EXACT_LANDMARKS,
    TRE_LANDMARKS,
    TRE_SUMMARY,
    caption_file,
    render_readme,
)

ROOT = Path(__file__).resolve().parents[1]


def test_results_readme_lists_are_generated_from_the_specs():
    """results/README.md shows the current lists (regenerate: python -m rnr.reporting.table_specs results/README.md)."""
    text = (ROOT / "results" / "README.md").read_text()
    assert render_readme(text) == text
    for table in TABLE_SPECS:
        if "csv" in table.formats:
            assert f"<!-- generated: columns {table.file('csv')} -->" in text, table.name
            section = text.split(f"<!-- generated: columns {table.file('csv')} -->", 1)[1].split("<!-- end", 1)[0]
            for column in table.columns:
                assert f"`{column.name}`" in section, (table.name, column.name)


def test_the_specs_name_the_columns_the_frames_have():
    assert TRE_SUMMARY.names == (*results.CONTRACT_COLUMNS, *results.EXTRA_COLUMNS, "label")
    assert TRE_LANDMARKS.names == (*results.TRE_LANDMARK_COLUMNS, "label")
    assert TRE_EXACT_LANDMARKS.names == (*results.TRE_EXACT_LANDMARK_COLUMNS, "label")
    frame = pd.DataFrame(
        {"case": 1, "configuration": np.repeat(["a", "b"], 5), "seed": 0, "landmark": np.tile(range(5), 2)}
    ).assign(tre_mm=np.arange(10.0))
    assert STATS.names == (*stats.paired_tests(frame, "a").columns, "label")


def test_every_file_has_a_key_and_every_table_a_caption():
    assert len(set(TABLES.values())) == len(TABLES)  # no two tables write one file
    assert set(HTML_TABLES) <= set(TABLES) and all(TABLES[k].endswith(".html") for k in HTML_TABLES)
    report = ROOT / "workflow" / "report"
    stubs = {p.relative_to(report).as_posix() for p in (report / "tables").glob("*.rst")}
    assert stubs == {caption_file(key) for key in TABLES}  # one caption file per table, none left over
    for table in TABLE_SPECS:
        assert f"snakemake.params.captions.{table.name} " in (report / "tables" / f"{table.name}.rst").read_text()
        assert len(CAPTIONS[table.name]) > 100


def test_rule_files_import_the_registry_without_heavy_packages():
    code = (
        "import sys, rnr.reporting.table_specs; "
        "print(sorted(m for m in ('numpy', 'pandas', 'scipy', 'torch', 'SimpleITK') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"
