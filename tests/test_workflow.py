"""The Snakemake workflow, run for real: lint, one dry run of the default config (the rules' wiring; what the
plan decides, config checks included, is tested in-process in test_plan.py), and a tiny phantom run (2 cases
x 2 configurations) from a temporary directory that is killed after its first registration, resumed, and
then checked: every table row, TRE after < TRE before, the HTML report."""

from __future__ import annotations

import base64
import html
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import TINY
from reliability_helpers import REPO, job_counts, snakemake

pytestmark = pytest.mark.workflow


def test_lint_is_clean(tmp_path):
    result = snakemake(tmp_path, "--lint")
    assert result.code == 0, result.text
    assert "Lints for" not in result.text


def test_dry_run_default_config(tmp_path):
    result = snakemake(tmp_path, "--dry-run", "--cores", "4", "all")
    assert result.code == 0, result.text
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    n_cases, n_configs = len(config["cases"]), len(config["configurations"])
    assert n_cases == 10
    assert job_counts(result.out) == {
        "all": 1,
        "phantom": 1,
        "convert": n_cases,
        "segment": n_cases,
        "settings": n_configs,
        "register": n_cases * n_configs,
        "evaluate": n_cases * (n_configs + 1),  # `initial` too
        "tables": 1,
        "figures": 1,
        "curves": 1,
        "total": 5 + 3 * n_cases + n_configs + 2 * n_cases * n_configs,
    }
    assert "results/phantom/tables/tre.md" in result.out


def test_schema_describes_every_key():
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())

    def walk(node: dict, where: str) -> None:
        assert "description" in node, f"{where} has no description"
        for key, child in node.get("properties", {}).items():
            walk(child, f"{where}.{key}")
        for key in ("items", "additionalProperties", "propertyNames"):
            if isinstance(node.get(key), dict):
                walk(node[key], f"{where}.{key}")
        if node.get("type") == "object" or node.get("type") == ["object", "null"]:
            assert node.get("additionalProperties") is not True, f"{where} accepts unknown keys"

    walk(schema, "config")


# -- the tiny run (conftest's session fixture tiny_run) ----------------------------------------------------
@pytest.mark.slow
def test_resume_keeps_finished_registrations(tiny_run):
    finished = tiny_run["finished_before_kill"]
    assert finished, "the first run was killed before any registration finished"
    for checkpoint, mtime in finished.items():
        assert checkpoint.stat().st_mtime_ns == mtime, f"{checkpoint} was recomputed after the resume"
    n_done = len(finished)
    assert len(re.findall(r"rule register:", tiny_run["resume_log"])) == len(tiny_plan().names) * 2 - n_done


@pytest.mark.slow
def tiny_plan():
    """The plan of the tiny run (its configurations, the sweeps' included)."""
    from test_plan import plan

    return plan(yaml.safe_load(TINY.read_text()))


def test_tiny_run_tables(tiny_run):
    config = yaml.safe_load(TINY.read_text())
    results = tiny_run["workdir"] / "results" / "phantom"
    tre = pd.read_csv(results / "tables" / "tre.csv")
    registered = list(tiny_plan().names)
    configurations = ["initial", *registered]
    expected = {(case, name) for case in config["cases"] for name in configurations}
    assert set(zip(tre["case"], tre["configuration"], strict=True)) == expected
    assert len(tre) == len(expected)
    for column in (
        "tre_mean_mm",
        "tre_std_mm",
        "tre_x_mm",
        "tre_y_mm",
        "tre_z_mm",
        "tre_snapped_mean_mm",
        "folding_fraction",
        "runtime_s",
        "device",
    ):
        assert tre[column].notna().all(), column
    # Scored against the phantom's exact motion: at this test scale (4-11 mm voxels) rounding the landmark files
    # leaves a floor near the initial TRE, the exact scores have none. 100 iterations take the exact TRE to
    # about 0.5-0.6 of the true displacement; a fit that is half broken does not reach 0.7.
    before = tre[tre.configuration == "initial"].set_index("case")["tre_exact_mean_mm"]
    for name in registered:
        after = tre[tre.configuration == name].set_index("case")["tre_exact_mean_mm"]
        assert (after <= 0.7 * before).all(), f"{name}: exact TRE {after.to_dict()} not 30 % below {before.to_dict()}"
        assert (tre[tre.configuration == name]["device"] == "cpu").all()
    markdown = (results / "tables" / "tre.md").read_text()
    for name in configurations:
        assert name in markdown
    assert "±" in markdown and "tabular" in (results / "tables" / "tre.tex").read_text()
    assert "| RNR, T00-T50 only |" in markdown  # the configuration's label heads its column
    assert (results / "tables" / "folding.csv").is_file()
    # The phantom carries its exact motion: per-landmark exact TRE beside the file-landmark TRE, and the paired
    # tests on both (stats.csv's value column says which).
    landmarks = pd.read_csv(results / "tables" / "tre_landmarks.csv")
    exact = pd.read_csv(results / "tables" / "tre_exact_landmarks.csv")
    keys = ["case", "configuration", "seed", "landmark"]
    assert exact[keys].equals(landmarks[keys]) and exact["tre_exact_mm"].notna().all()
    means = exact.groupby(["case", "configuration"])["tre_exact_mm"].mean()
    rows = list(zip(tre["case"], tre["configuration"], strict=True))
    np.testing.assert_allclose(means.loc[rows].to_numpy(), tre["tre_exact_mean_mm"].to_numpy())
    stats_csv = pd.read_csv(results / "tables" / "stats.csv")
    assert sorted(stats_csv["value"].unique()) == ["tre_exact_mm", "tre_mm"]
    assert (results / "figures" / "paired_differences_exact.png").is_file()
    assert sorted(p.name for p in (results / "figures").glob("*.png"))
    for case in config["cases"]:
        for name in configurations:
            seed = "seed0" if name == "initial" else "seed3"
            figures = results / "runs" / name / f"case{case}" / seed / "figures"
            assert sorted(figures.glob("*.png")), (name, case)
    settings = yaml.safe_load((results / "settings" / "rnr.yaml").read_text())
    assert settings == {**config["configurations"]["rnr"], "device": "cpu"}


@pytest.mark.slow
def test_tiny_run_studies(tiny_run):
    """The sweep's ablation table and figures, every loop run's curve (its last point the run's final TRE), and
    the accuracy-against-budget table and figure."""
    results = tiny_run["workdir"] / "results" / "phantom"
    tre = pd.read_csv(results / "tables" / "tre.csv").set_index(["configuration", "case"])
    grad = results / "ablation" / "grad"
    for name in ("ablation.csv", "ablation.md", "ablation.tex", "ablation.html", "ablation.png", "ablation.pdf"):
        assert (grad / name).stat().st_size > 0, name
    table = pd.read_csv(grad / "ablation.csv")
    assert table["configuration"].tolist() == ["rnr", "rnr_alpha_grad_0"]
    assert table["value"].tolist() == ["alpha_grad=1", "alpha_grad=0"]
    means = tre["tre_mean_mm"].groupby("configuration").mean()
    np.testing.assert_allclose(table["tre_mean_mm"], means.loc[table["configuration"]].to_numpy())
    assert table["tre_exact_mean_mm"].notna().all() and table["runtime_s"].gt(0).all()
    assert table["tested"].eq("tre_exact_mm").all() and np.isnan(table["p_holm"].iloc[0])  # the base row
    assert "| RNR alpha_grad=0 |" in (grad / "ablation.md").read_text()
    assert "tabular" in (grad / "ablation.tex").read_text() and "<table>" in (grad / "ablation.html").read_text()
    plan = tiny_plan()
    for configuration in plan.configurations:
        for case in plan.cases:
            run = results / "runs" / configuration.name / f"case{case}" / "seed3"
            curve = pd.read_csv(run / "curve.csv")
            assert curve["iteration"].iloc[-1] == configuration.settings["iterations"]
            final = tre.loc[(configuration.name, case)]
            assert curve["tre_mm"].iloc[-1] == pytest.approx(final["tre_mean_mm"], abs=1e-9)
            assert curve["tre_exact_mm"].iloc[-1] == pytest.approx(final["tre_exact_mean_mm"], abs=1e-9)
    budget = pd.read_csv(results / "curves" / "budget.csv")
    assert budget["configuration"].tolist() == list(plan.names)
    assert (results / "curves" / "curves.png").stat().st_size > 10_000
    assert (results / "curves" / "budget.md").read_text().count("|") > 10


@pytest.fixture(scope="module")
def tiny_report(tiny_run) -> Path:
    workdir = tiny_run["workdir"]
    report = workdir / "report.html"
    result = snakemake(workdir, "--configfile", str(TINY), "--cores", "1", "--report", str(report))
    assert result.code == 0, result.text
    assert "ERROR" not in result.text  # a caption that docutils could not render
    return report


def report_data(report: Path, name: str):
    """One of the JSON values the report's page script holds, e.g. `results` or `categories`."""
    match = re.search(rf"var {name} = (\{{.*?\}});\s*</script>", report.read_text(errors="replace"), re.S)
    assert match, name
    return json.loads(match.group(1))


def _text(caption_html: str) -> str:
    """A rendered caption as plain text on one line."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", caption_html)).split())


@pytest.mark.slow
def test_tiny_run_report(tiny_report):
    from rnr.layout import FIGURE_ORDER, sortable_number
    from rnr.reporting import plots
    from rnr.reporting.table_specs import HTML_TABLES, TABLE_OF, TABLES

    text = tiny_report.read_text(errors="replace")
    for name in ("tre.csv", "tre.md", "tre.tex", "folding.csv", "tre_distribution"):
        assert name in text, name
    results = report_data(tiny_report, "results")
    categories = report_data(tiny_report, "categories")
    # The tables as HTML pages, shown inline (the report shows text/html in an iframe), numbered in reading order.
    shown = {Path(path).name: results[path] for path in categories["Tables"]["Other"]}
    assert sorted(shown) == sorted(TABLES[key] for key in HTML_TABLES)
    for number, (key, title) in enumerate(HTML_TABLES.items(), start=1):
        entry = shown[TABLES[key]]
        assert entry["mime_type"] == "text/html" and entry["labels"] == {"#": str(number), "table": title}
    tre = pd.read_csv(tiny_report.parent / "results" / "phantom" / "tables" / "tre.csv")
    page = base64.b64decode(shown["tre.html"]["data_uri"].partition(",")[2]).decode()
    for r in tre.itertuples():
        assert f"{r.tre_mean_mm:.2f} ± {r.tre_std_mm:.2f}" in page, (r.case, r.configuration)
    exact = base64.b64decode(shown["tre_exact.html"]["data_uri"].partition(",")[2]).decode()
    assert exact.count("<table>") == 2  # the phantom carries its exact motion
    # Every table file's caption is its table's caption in rnr.reporting.table_specs.
    for category in ("Tables", "Tables (Markdown, LaTeX, CSV)"):
        for path in categories[category]["Other"]:
            table = TABLE_OF[next(k for k, f in TABLES.items() if f == Path(path).name)]
            expected = " ".join(table.caption.replace("``", "").replace("**", "").split())
            assert _text(results[path]["caption"]).startswith(expected[:200]), path
    # Dataset figures: each caption states its own question (plots.QUESTIONS).
    figures = {results[p]["labels"]["figure"]: _text(results[p]["caption"]) for p in categories["Figures"]["Other"]}
    assert set(plots.QUESTIONS) <= set(figures)
    for name, caption in figures.items():
        assert caption.startswith(plots.QUESTIONS.get(name, "")), name
        assert not caption.startswith("Figure"), f"{name} has no caption of its own"
    # ... listed in reading order (the report sorts by the labels, as text), not by file name.
    numbered = sorted(
        (results[p]["labels"]["#"], results[p]["labels"]["figure"]) for p in categories["Figures"]["Other"]
    )
    assert [name for _, name in numbered] == [n for n in FIGURE_ORDER if n in figures]
    # Run figures are filed under the configuration's display label (tiny.yaml labels rnr_no_intermediate).
    # tiny.yaml merges over config/config.yaml, whose rnr is labelled RNR; its sweeps label their runs after it.
    assert set(categories["Slice panels"]) == {
        "initial",
        "RNR",
        "RNR, T00-T50 only",
        "RNR alpha_grad=0",
    }
    # Per-case panels: case and seed labels sort as numbers; each panel type has its own caption.
    config = yaml.safe_load(TINY.read_text())
    largest = max(config["cases"])
    captions = {}
    for configuration, paths in categories["Slice panels"].items():
        for path in paths:
            labels = results[path]["labels"]
            case = int(re.search(r"/case(\d+)/", path).group(1))
            assert labels["case"] == sortable_number(case, largest), path
            captions[(configuration, labels["figure"])] = _text(results[path]["caption"])
    assert sorted(sortable_number(c, 10) for c in range(1, 11)) == [sortable_number(c, 10) for c in range(1, 11)]
    assert "before registration" in captions[("initial", "slices_T00_T50")]
    assert "the full map" in captions[("RNR", "slices_T00_T50")]
    assert "intermediate step from T40 to T50" in captions[("RNR", "slices_T40_T50")]
    assert "compress, expand or fold" in captions[("RNR", "detj")]
    assert "did the optimisation settle" in captions[("RNR", "loss")]
    # The runtime chart has a log scale: every job needs a runtime > 0 (the settings rule had < 0).
    runtimes = report_data(tiny_report, "runtimes_spec")["data"]["values"]
    assert {r["rule"] for r in runtimes} >= {"settings", "register", "tables"}
    assert all(r["runtime"] > 0 for r in runtimes), [r for r in runtimes if not r["runtime"] > 0]


@pytest.mark.slow
def test_tiny_run_report_in_a_browser(tiny_report, tmp_path):
    """workflow/scripts/check_report.py in headless Chromium: the landing page, the TRE table page (its numbers
    against tre.csv) and the runtime data."""
    if not any(shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")):
        pytest.skip("no Chromium on PATH (Debian: apt-get install chromium); the report is checked without a browser")
    tables = tiny_report.parent / "results" / "phantom" / "tables"
    out = tmp_path / "screenshots"
    script = REPO / "workflow" / "scripts" / "check_report.py"
    result = subprocess.run(
        [sys.executable, str(script), str(tiny_report), "--tables", str(tables), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("landing.png", "tables.png", "tre_page.png", "stats.png", "paired_tests_page.png"):
        assert (out / name).stat().st_size > 10_000, name


@pytest.mark.slow
def test_complete_run_has_nothing_to_do(tiny_run):
    result = snakemake(tiny_run["workdir"], "--configfile", str(TINY), "--cores", "1", "--dry-run", "all")
    assert result.code == 0, result.text
    assert "Nothing to be done" in result.text


@pytest.mark.slow
def test_dirlab_dataset_reads_a_dirlab_folder(phantom_dataset, tmp_path):
    """dataset=dirlab on a folder in the DIR-Lab layout (conftest's phantom, which has Masks/): convert,
    the provided mask via masks.method auto, and the identity evaluation of case 1."""
    import json

    import numpy as np

    from rnr.data.case import load_case
    from rnr.data.phantom import load_truth

    target = "results/dirlab/runs/initial/case1/seed0/metrics.json"
    result = snakemake(
        tmp_path,
        "--configfile",
        str(TINY),
        "--cores",
        "2",
        target,
        "--config",
        "dataset=dirlab",
        f"dirlab_dir={phantom_dataset}",
        "masks={method: auto}",
    )
    assert result.code == 0, result.text
    case = load_case(tmp_path / "results" / "dirlab" / "data" / "case1")
    assert np.array_equal(case.load_mask(), load_truth(phantom_dataset, 1).mask_T00)
    assert "provided mask" in (tmp_path / "results" / "dirlab" / "logs" / "segment" / "case1.log").read_text()
    metrics = json.loads((tmp_path / target).read_text())
    assert metrics["tre"]["mean_mm"] == pytest.approx(3.89, abs=0.05)  # the phantom's calibrated initial TRE
