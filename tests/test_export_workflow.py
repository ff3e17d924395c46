"""The opt-in `export` target and a `method: field` configuration in the workflow, by dry runs: the field
file is an input of its registration, so an export of another configuration is scheduled first."""

from __future__ import annotations

import pytest
import yaml
from reliability_helpers import job_counts, snakemake

pytestmark = pytest.mark.workflow

CONFIG = {
    "cases": [1, 2],
    "configurations": {
        "rnr": {"iterations": 5},
        "rnr_field": {"method": "field", "fields": "results/phantom/export/rnr/case{case}/seed3/field.nii.gz"},
        # config/config.yaml's other configurations merge in; switch them off.
        "rnr_no_intermediate": False,
        "idir_cpu": False,
        "demons": False,
    },
}


def _config(tmp_path, overrides=None):
    path = tmp_path / "field.yaml"
    path.write_text(yaml.safe_dump({**CONFIG, **(overrides or {})}))
    return str(path)


def test_all_with_a_field_configuration_exports_its_source_first(tmp_path):
    result = snakemake(tmp_path, "all", "--dry-run", "--cores", "1", "--configfile", _config(tmp_path))
    assert result.code == 0, result.text
    counts = job_counts(result.out)
    # Two configurations x two cases, and the export of rnr's two runs first.
    assert counts["register"] == 4 and counts["export_run"] == 2 and counts["evaluate"] == 6
    assert "results/phantom/export/rnr/case2/seed3/field.nii.gz" in result.out


def test_export_target_is_opt_in_and_covers_every_run(tmp_path):
    config = _config(
        tmp_path, {"configurations": {**CONFIG["configurations"], "rnr_field": False, "d": {"method": "demons"}}}
    )
    result = snakemake(tmp_path, "all", "--dry-run", "--cores", "1", "--configfile", config)
    assert result.code == 0 and "export_run" not in job_counts(result.out)
    result = snakemake(tmp_path, "export", "--dry-run", "--cores", "1", "--configfile", config)
    assert result.code == 0, result.text
    counts = job_counts(result.out)
    assert counts["export_run"] == 4 and "tables" not in counts  # rnr and d, two cases each
    assert "results/phantom/export/d/case1/seed3/export.json" in result.out
