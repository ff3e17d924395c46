"""``rnr tables`` on metrics written by real ``rnr evaluate`` runs (identity and affine checkpoints)."""

from __future__ import annotations

import json
import re
import shutil
import warnings
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from evaluation_case import AFFINE_CONFIGS, make_runs

from rnr import cli, layout
from rnr.reporting.provenance import provenance_lines
from rnr.reporting.results import CONTRACT_COLUMNS, TRE_LANDMARK_COLUMNS
from rnr.reporting.table_render import Block, Cell, View, frame_view, html
from rnr.reporting.table_specs import HTML_TABLES, STATS, TABLES, Column, Table

CONFIGS = ["initial", *sorted(AFFINE_CONFIGS)]
#: Their headings in the tables of ``rnr tables`` without --compare-to: the first registered one is the reference.
HEADINGS = ["initial", f"{CONFIGS[1]} (ref.)", *CONFIGS[2:]]


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
    assert "| case | " + " | ".join(HEADINGS) + " |" in text
    rows = _md_rows(text)
    assert list(rows) == ["1", "2", "mean"]
    frame = pd.read_csv(tables / "tre.csv")
    for case in (1, 2):
        for config, cell in zip(CONFIGS, rows[str(case)], strict=True):
            r = frame[(frame["case"] == case) & (frame["configuration"] == config)].iloc[0]
            assert cell.strip("*†‡") == f"{r['tre_mean_mm']:.2f} ± {r['tre_std_mm']:.2f}"
        # Bold: the lowest mean among the registered configurations (never initial).
        registered = {
            c: frame[(frame["case"] == case) & (frame["configuration"] == c)]["tre_mean_mm"].iloc[0]
            for c in CONFIGS[1:]
        }
        best = min(registered, key=registered.get)
        assert [c.startswith("**") for c in rows[str(case)]] == [c == best for c in CONFIGS]
    means = frame.groupby("configuration")["tre_mean_mm"].mean()
    # Mean row: mean of the case means, then the 95 % bootstrap interval over cases.
    assert [c.strip("*†‡").split(" [")[0] for c in rows["mean"]] == [f"{means[c]:.2f}" for c in CONFIGS]
    assert all(re.fullmatch(r"\d+\.\d\d \[\d+\.\d\d–\d+\.\d\d\]", c.strip("*†‡")) for c in rows["mean"])
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
    body = tex.split(r"\midrule", 1)[1]
    assert body.count(r" \\") == 2 + 2  # two cases, mean and its interval line
    assert r"95\,\% CI & \multicolumn{2}{c}{\footnotesize [" in tex
    # The reference's heading 'affine_large (ref.)' is long: broken over two lines of the header.
    assert r"\begin{tabular}[b]{@{}c@{}}affine\_large \\ (ref.)\end{tabular}" in tex
    assert tex.count(r"r@{\,}l") == len(CONFIGS)  # two decimal-aligned columns per configuration
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
    assert list(landmarks.columns) == [*TRE_LANDMARK_COLUMNS, "label"]
    assert (landmarks["label"] == landmarks["configuration"]).all()  # no labels given: the names
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


class _Tables(HTMLParser):
    """Every <table> of a page as rows of cell texts (header row first), and the page's text."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.text: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def html_tables(path: Path) -> _Tables:
    parser = _Tables()
    parser.feed(path.read_text())
    return parser


def test_html_pages_show_the_tables_with_their_numbers_and_notes(tables):
    """The report shows the HTML pages inline: each holds its table's numbers, title and notes."""
    assert set(HTML_TABLES) <= set(TABLES) and all(TABLES[k].endswith(".html") for k in HTML_TABLES)
    frame = pd.read_csv(tables / "tre.csv")
    page = html_tables(tables / "tre.html")
    assert len(page.tables) == 1
    header, *body = page.tables[0]
    assert header == ["case", *HEADINGS]
    markdown = _md_rows((tables / "tre.md").read_text())
    assert {row[0]: row[1:] for row in body} == {k: [c.replace("**", "") for c in v] for k, v in markdown.items()}
    r = frame[(frame["case"] == 2) & (frame["configuration"] == "affine_small")].iloc[0]
    assert body[1][1 + CONFIGS.index("affine_small")].strip("*†‡") == f"{r['tre_mean_mm']:.2f} ± {r['tre_std_mm']:.2f}"
    text = "".join(page.text)
    assert HTML_TABLES["tre_html"] in text and "continuous TRE" in text and "ddof = 1" in text
    assert "**" not in text and "<strong>" in (tables / "tre.html").read_text()  # Markdown bold rendered
    folding = html_tables(tables / "folding.html").tables[0]
    assert folding[0][:3] == ["case", "configuration", "folding (%)"] and len(folding) == 1 + len(frame)
    exact = html_tables(tables / "tre_exact.html")  # these runs carry no exact motion: the page says so
    assert exact.tables == [] and "carries no exact motion" in "".join(exact.text)
    configurations = html_tables(tables / "configurations.html").tables[0]
    assert configurations[0][0] == "configuration" and [row[0] for row in configurations[1:]] == CONFIGS
    stats_page = html_tables(tables / "stats.html").tables[0]
    assert len(stats_page) == 1 + len(pd.read_csv(tables / "stats.csv"))
    for key in HTML_TABLES:
        assert (tables / TABLES[key]).read_text().startswith("<!DOCTYPE html>"), key


def test_html_stats_page_lists_every_test(seeded):
    """Every test is a row; a column with one value in every row (the reference, alpha, ...) is stated once
    above the table instead of repeated on each row, so the page fits the report's pane."""
    tests = pd.read_csv(seeded / "stats.csv")
    parsed = html_tables(seeded / "stats.html")
    page = parsed.tables[0]
    # Constant or not, label is not a column of the page: the configuration column shows the labels.
    varying = [c for c in tests.columns if tests[c].nunique(dropna=False) > 1 or c in ("configuration", "case")]
    constant = [c for c in tests.columns if c not in varying and c != "label"]
    varying = [c for c in varying if c != "label"]
    assert page[0] == [STATS.column(c).heading for c in varying] and len(page) == 1 + len(tests)
    assert {"reference", "alpha", "test"} <= set(constant)
    note = next(t for t in parsed.text if t.startswith("Every row has:"))
    assert "reference = affine_small" in note and "alpha = 0.05" in note
    column = varying.index("p_value")
    assert [float(row[column]) for row in page[1:]] == pytest.approx(list(tests["p_value"]), rel=1e-3)
    assert '<div class="scroll">' in (seeded / "stats.html").read_text()  # a wide table scrolls in its box


def test_an_empty_csv_table_is_a_page_that_says_so():
    frame = pd.DataFrame(columns=list(STATS.names))
    page = html(frame_view(STATS, frame, "Paired tests", ["What it is."], {}), "Paired tests")
    assert "<table" not in page and "The table is empty." in page and "What it is." in page


def test_html_escapes_and_renders_inline_markup():
    table = Table("t", "t", ("html",), "T", "", "", (Column("a", format="text"), Column("b", format=".1f")))
    view = View(table, "Title <x>", [Block([[Cell("c&d"), Cell(1.0, bold=True)]])], ["note `k`"])
    page = html(view, "T")
    assert "<strong>Title &lt;x&gt;.</strong>" in page
    assert '<td class="text">c&amp;d</td><td class="num"><strong>1.0</strong></td>' in page
    assert '<p class="note">note <code>k</code></p>' in page


# -- seeds, paired tests and provenance --------------------------------------------------------------------
@pytest.fixture(scope="module")
def seeded(tmp_path_factory) -> Path:
    """Two affine configurations x three seeds x three cases, with settings that differ in lr."""
    settings = {
        "affine_small": {"method": "affine", "iterations": 10, "lr": 1e-4},
        "affine_large": {"method": "affine", "iterations": 10, "lr": 1e-3},
    }
    runs = make_runs(tmp_path_factory.mktemp("seeded"), cases=(1, 2, 3), seeds=[3, 4, 5], settings=settings)
    out = runs.parent / "tables"
    argv = ["tables", "--runs-dir", str(runs), "--out", str(out), "--compare-to", "affine_small"]
    assert cli.main([*argv, "--configurations", *CONFIGS]) == 0
    return out


def test_stats_csv_p_values_equal_scipy_on_the_landmark_table(seeded):
    """The paired tests recomputed independently from tre_landmarks.csv with scipy: per case on the seed-averaged
    landmark TREs, across cases on the case means; Holm over the compared configurations (one here)."""
    from scipy.stats import wilcoxon

    landmarks = pd.read_csv(seeded / "tre_landmarks.csv")
    tests = pd.read_csv(seeded / "stats.csv")
    assert set(landmarks["seed"][landmarks["configuration"] != "initial"]) == {3, 4, 5}
    averaged = landmarks.groupby(["configuration", "case", "landmark"])["tre_mm"].mean()
    diffs = {case: averaged["affine_large"][case] - averaged["affine_small"][case] for case in (1, 2, 3)}
    for case, diff in diffs.items():
        row = tests[(tests["scope"] == "case") & (tests["case"] == case)].iloc[0]
        expected = wilcoxon(diff.to_numpy(), zero_method="wilcox", alternative="two-sided")
        assert row["configuration"] == "affine_large" and row["reference"] == "affine_small"
        assert row["p_value"] == pytest.approx(expected.pvalue, rel=1e-9)
        assert row["p_holm"] == pytest.approx(expected.pvalue, rel=1e-9)  # one comparison: Holm changes nothing
        assert row["median_diff_mm"] == pytest.approx(float(np.median(diff)), rel=1e-9)
    case_means = pd.Series({case: float(d.mean()) for case, d in diffs.items()})
    across = tests[tests["scope"] == "all"].iloc[0]
    assert across["p_value"] == pytest.approx(wilcoxon(case_means.to_numpy()).pvalue, rel=1e-9)


def test_tre_md_marks_the_tests_and_names_what_differs(seeded):
    text = (seeded / "tre.md").read_text()
    tests = pd.read_csv(seeded / "stats.csv")
    significant = tests[(tests["scope"] == "case") & tests["significant"]]
    rows = _md_rows(text)
    for r in significant.itertuples():
        marker = "*" if r.median_diff_mm < 0 else "†"
        assert rows[str(int(r.case))][CONFIGS.index("affine_large")].endswith(marker)
    assert "Wilcoxon signed-rank" in text and "Holm" in text and "α = 0.05" in text
    assert "averaged over the 3 seeds" in text
    assert "Settings that differ: affine_large: lr 0.001; affine_small: lr 0.0001." in text
    # Seed values, said so: 'seeds 3' alone would read as three seeds.
    assert "iterations 10" in text and "seeds 3, 4, 5 (3 runs per case)" in text and "torch test" in text
    tex = (seeded / "tre.tex").read_text()
    assert r"Settings that differ: affine\_large: lr 0.001" in tex and r"$\alpha$" in tex
    summary = pd.read_csv(seeded / "tre.csv")
    registered = summary[summary["configuration"] != "initial"]
    assert (registered["n_seeds"] == 3).all() and (registered["tre_seed_std_mm"] > 0).all()
    assert {"tre_median_mm", "tre_p95_mm", "tre_max_mm", "sdlogj"} <= set(summary.columns)
    configurations = pd.read_csv(seeded / "configurations.csv")
    assert list(configurations["configuration"]) == CONFIGS
    assert configurations.set_index("configuration").loc["affine_large", "seeds"] == "3 4 5"


def test_runs_of_one_configuration_with_different_settings_are_an_error(seeded, tmp_path, capsys):
    runs = tmp_path / "runs"
    shutil.copytree(seeded.parent / "runs", runs)
    path = runs / "affine_small" / "case2" / "seed4" / layout.METRICS_JSON
    record = json.loads(path.read_text())
    record["run"]["settings"]["iterations"] = 99  # a stale run of an edited configuration
    path.write_text(json.dumps(record))
    assert cli.main(["tables", "--runs-dir", str(runs), "--out", str(tmp_path / "t")]) == 2
    err = capsys.readouterr().err
    assert "configuration 'affine_small': its runs were made with different settings" in err
    assert str(path) in err and not (tmp_path / "t").exists()


def _pdflatex(document: Path, options: str, body: str) -> str:
    """Write ``document`` (an article with the class ``options``, booktabs and ``body``), compile it with pdflatex
    in its folder, return the log."""
    import subprocess

    document.write_text(
        f"\\documentclass[{options}]{{article}}\n\\usepackage[utf8]{{inputenc}}\n\\usepackage{{booktabs}}\n"
        f"\\begin{{document}}\n{body}\n\\end{{document}}\n"
    )
    result = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", document.name],
        cwd=document.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    return document.with_suffix(".log").read_text(errors="replace")


def test_latex_tables_compile_and_keep_the_list_of_tables_short(seeded, exact_tables, tmp_path):
    """tre.tex, tre_snapped.tex and tre_exact.tex drop into a document with booktabs alone, without and with an
    exact motion (and a display label with a LaTeX special character): compiled with pdflatex; the List of
    Tables gets the short caption, the conventions sit under the table."""
    import shutil as sh

    tex = (seeded / "tre.tex").read_text()
    assert r"\caption[TRE (mm) per case, mean $\pm$ std]" in tex and r"r@{\,}l" in tex
    assert r"\footnotesize" in tex and "Settings that differ" in tex.split(r"\end{tabular}")[-1]
    if sh.which("pdflatex") is None:
        pytest.skip("pdflatex is not installed (Debian: texlive-latex-base texlive-latex-recommended)")
    document = tmp_path / "doc.tex"
    names = ("tre.tex", "tre_snapped.tex", "tre_exact.tex")
    inputs = "\n".join(rf"\input{{{folder / name}}}" for folder in (seeded, exact_tables) for name in names)
    for _ in range(2):  # the second run fills the List of Tables
        _pdflatex(document, "", f"\\listoftables\n{inputs}")
    lot = (tmp_path / "doc.lot").read_text()
    assert "TRE (mm) per case" in lot and "TRE against the exact motion" in lot and "ddof" not in lot
    assert (tmp_path / "doc.pdf").stat().st_size > 1000


def test_provenance_separates_differing_shared_and_method_only_settings():
    """A key a configuration's method lacks ('-') neither differs nor is shared: it is listed with the
    configurations that have it."""
    configurations = pd.DataFrame(
        {
            "configuration": ["a", "b", "d"],
            "method": ["rnr", "rnr", "demons"],
            "seeds": ["3", "3", "3"],
            "iterations": [200.0, 300.0, np.nan],
            "width": [100.0, 100.0, np.nan],
            "demons_sigma": [np.nan, np.nan, 1.5],
            "n_runs": [1, 1, 1],
            "devices": ["cpu", "cpu", "cpu"],
            "versions": ["torch x", "torch x", "torch x"],
        }
    )
    lines = provenance_lines(configurations, full=True)
    assert provenance_lines(configurations)[2] == "The settings of each method: `configurations.csv`."
    assert (
        lines[0]
        == "Settings that differ: a: method rnr, iterations 200; b: method rnr, iterations 300; d: method demons."
    )
    assert lines[1] == "Shared by every configuration: seed 3 (one run per case)."
    assert lines[2] == "Method settings: a, b: width 100; d: demons_sigma 1.5."


def test_tre_csv_spread_is_that_of_the_seed_averaged_landmarks(seeded):
    """tre_std_mm, median, p95 and max in tre.csv, recomputed from tre_landmarks.csv with numpy: statistics of
    each landmark's TRE averaged over the seeds first (not the mean over seeds of each run's statistic)."""
    landmarks = pd.read_csv(seeded / "tre_landmarks.csv")
    summary = pd.read_csv(seeded / "tre.csv").set_index(["case", "configuration"])
    averaged = landmarks.groupby(["case", "configuration", "landmark"])["tre_mm"].mean()
    for (case, config), t in averaged.groupby(level=["case", "configuration"]):
        row, t = summary.loc[(case, config)], t.to_numpy()
        assert row["tre_std_mm"] == pytest.approx(np.std(t, ddof=1), rel=1e-9), (case, config)
        assert row["tre_median_mm"] == pytest.approx(np.median(t), rel=1e-9)
        assert row["tre_p95_mm"] == pytest.approx(np.percentile(t, 95), rel=1e-9)
        assert row["tre_max_mm"] == pytest.approx(np.max(t), rel=1e-9)
    # The seeds differ, so a per-run std averaged over seeds would not match to 1e-9.
    per_run_std = landmarks.groupby(["case", "configuration", "seed"])["tre_mm"].std().groupby(level=[0, 1]).mean()
    registered = [k for k in per_run_std.index if k[1] != "initial"]
    assert any(abs(per_run_std[k] - summary.loc[k, "tre_std_mm"]) > 1e-6 for k in registered)


def test_mean_row_interval_resamples_the_case_means(seeded):
    """The mean row's 95 % interval in tre.md, recomputed from tre_landmarks.csv with scipy: the bootstrap of the
    mean over the case means (BCa, percentile where BCa fails), seed 0, 10000 resamples."""
    from scipy.stats import bootstrap

    landmarks = pd.read_csv(seeded / "tre_landmarks.csv")
    rows = _md_rows((seeded / "tre.md").read_text())
    case_means = landmarks.groupby(["configuration", "case"])["tre_mm"].mean()  # equal landmark sets per seed
    for config, cell in zip(CONFIGS, rows["mean"], strict=True):
        x = case_means[config].to_numpy()
        for method in ("BCa", "percentile"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = bootstrap((x,), np.mean, n_resamples=10000, method=method, rng=np.random.default_rng(0))
            low, high = res.confidence_interval
            if np.isfinite(low) and np.isfinite(high):
                break
        assert cell.strip("*†‡") == f"{x.mean():.2f} [{low:.2f}–{high:.2f}]", config


# -- datasets that carry their exact motion ------------------------------------------------------------------
#: Exact TRE of each configuration as a function of its file-landmark TRE t: on the exact positions the ranking
#: of the two affine maps is the reverse of the file landmarks' (affine_large better), as can happen when the
#: file landmarks' rounding to whole voxels hides the difference.
EXACT = {"initial": lambda t: t, "affine_small": lambda t: 0.6 * t + 0.4, "affine_large": lambda t: 0.3 * t + 0.1}


@pytest.fixture(scope="module")
def exact_tables(seeded, tmp_path_factory) -> Path:
    """The seeded runs with an exact-truth record added to every metrics.json (as rnr evaluate writes it for
    the phantom, rnr/data/truth.py), tabled with a display label for affine_small."""
    runs = tmp_path_factory.mktemp("exact") / "runs"
    shutil.copytree(seeded.parent / "runs", runs)
    for path in runs.rglob(layout.METRICS_JSON):
        record = json.loads(path.read_text())
        t = np.array([r["tre_mm"] for r in record["tre"]["per_landmark"]])
        exact = EXACT[record["configuration"]](t) + 0.01 * (record.get("seed") or 0)
        rows = [
            {"landmark": i, "tre_mm": float(v), "dx_mm": float(v), "dy_mm": 0.0, "dz_mm": 0.0}
            for i, v in enumerate(exact)
        ]
        record["exact"] = {
            "tre": {"mean_mm": float(exact.mean()), "std_mm": float(exact.std(ddof=1)), "per_landmark": rows},
            "dense": {"rms_mm": float(exact.mean()), "p95_mm": 1.0, "max_mm": 2.0},
        }
        path.write_text(json.dumps(record))
    out = runs.parent / "tables"
    argv = ["tables", "--runs-dir", str(runs), "--out", str(out), "--compare-to", "affine_small"]
    assert cli.main([*argv, "--configurations", *CONFIGS, "--label", "affine_small=Affine, 3 %"]) == 0
    return out


def test_exact_landmarks_and_tests_recomputed_with_scipy(exact_tables):
    """tre_exact_landmarks.csv has the rows of tre_landmarks.csv; stats.csv tests both values, and its exact
    rows equal scipy's Wilcoxon on the seed-averaged exact per-landmark TRE of that file."""
    from scipy.stats import wilcoxon

    landmarks = pd.read_csv(exact_tables / "tre_landmarks.csv")
    exact = pd.read_csv(exact_tables / "tre_exact_landmarks.csv")
    keys = ["case", "configuration", "seed", "landmark"]
    assert exact[keys].equals(landmarks[keys])
    tests = pd.read_csv(exact_tables / "stats.csv")
    assert sorted(tests["value"].unique()) == ["tre_exact_mm", "tre_mm"]
    averaged = exact.groupby(["configuration", "case", "landmark"])["tre_exact_mm"].mean()
    rows = tests[tests["value"] == "tre_exact_mm"]
    for case in (1, 2, 3):
        diff = (averaged["affine_large"][case] - averaged["affine_small"][case]).to_numpy()
        row = rows[(rows["scope"] == "case") & (rows["case"] == case)].iloc[0]
        assert row["p_value"] == pytest.approx(wilcoxon(diff).pvalue, rel=1e-9)
        assert row["median_diff_mm"] == pytest.approx(np.median(diff), rel=1e-9) and row["median_diff_mm"] < 0
    file_rows = tests[(tests["value"] == "tre_mm") & (tests["scope"] == "case")]
    assert (file_rows["median_diff_mm"] > 0).sum() >= 2  # the file landmarks rank the other way round


def test_tre_exact_is_marked_from_the_exact_tests(exact_tables):
    """Each table's cells carry the markers of its own value's tests: tre_exact.md those on tre_exact_mm,
    tre.md those on tre_mm (which rank the two maps the other way round here)."""
    tests = pd.read_csv(exact_tables / "stats.csv")
    exact_md = _md_rows((exact_tables / "tre_exact.md").read_text().split("\n\n| case (dense")[0])
    tre_md = _md_rows((exact_tables / "tre.md").read_text())
    column = CONFIGS.index("affine_large")
    shown = {}
    for value, rows in (("tre_exact_mm", exact_md), ("tre_mm", tre_md)):
        for r in tests[(tests["value"] == value) & (tests["scope"] == "case")].itertuples():
            expected = ("*" if r.median_diff_mm < 0 else "†") if r.significant else ""
            cell = rows[str(int(r.case))][column].replace("**", "").rstrip("‡")  # bold drawn, ‡ not tested here
            shown[(value, int(r.case))] = cell[-1] if cell[-1] in "*†" else ""
            assert shown[(value, int(r.case))] == expected, (value, r.case, cell)
    assert {shown[("tre_exact_mm", c)] for c in (1, 2, 3)} == {"*"}
    assert any(shown[("tre_mm", c)] == "†" for c in (1, 2, 3))
    assert "exact TREs" in (exact_tables / "tre_exact.md").read_text()  # the legend names the tested value


def test_display_labels_in_every_format(exact_tables):
    label = "Affine, 3 %"
    assert f"| case | initial | affine_large | {label} (ref.) |" in (exact_tables / "tre.md").read_text()
    assert f"| 1 | {label} |" in (exact_tables / "folding.md").read_text()
    assert html_tables(exact_tables / "tre.html").tables[0][0] == ["case", "initial", "affine_large", f"{label} (ref.)"]
    heading = r"\multicolumn{2}{c}{\begin{tabular}[b]{@{}c@{}}Affine, \\ 3 \% \\ (ref.)\end{tabular}}"
    assert heading in (exact_tables / "tre.tex").read_text()
    assert f"{label} = `affine_small`" in (exact_tables / "tre_exact.md").read_text()
    for name in (
        "tre.csv",
        "folding.csv",
        "tre_landmarks.csv",
        "tre_exact_landmarks.csv",
        "stats.csv",
        "configurations.csv",
    ):
        frame = pd.read_csv(exact_tables / name)
        expected = frame["configuration"].map({"affine_small": label}).fillna(frame["configuration"])
        assert frame.columns[-1] == "label" and (frame["label"] == expected).all(), name


def test_figures_of_a_dataset_with_exact_motion_add_the_exact_paired_differences(exact_tables, tmp_path):
    out = tmp_path / "figures"
    argv = ["figures", "--runs-dir", str(exact_tables.parent / "runs"), "--out", str(out)]
    assert cli.main([*argv, "--configurations", *CONFIGS, "--compare-to", "affine_small"]) == 0
    assert (out / "paired_differences.png").is_file() and (out / "paired_differences_exact.png").is_file()


def test_runs_without_exact_per_landmark_values_are_clear_errors(exact_tables, tmp_path, capsys):
    runs = tmp_path / "runs"
    shutil.copytree(exact_tables.parent / "runs", runs)
    path = runs / "affine_small" / "case2" / "seed4" / layout.METRICS_JSON
    record = json.loads(path.read_text())
    del record["exact"]["tre"]["per_landmark"]  # as an older rnr evaluate wrote it
    path.write_text(json.dumps(record))
    assert cli.main(["tables", "--runs-dir", str(runs), "--out", str(tmp_path / "t")]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "exact.tre.per_landmark" in err and "evaluate the run again" in err
    record["exact"] = None  # one run of a dataset without truth among runs with it
    path.write_text(json.dumps(record))
    assert cli.main(["tables", "--runs-dir", str(runs), "--out", str(tmp_path / "t")]) == 2
    assert "expected all or none" in capsys.readouterr().err and not (tmp_path / "t").exists()


# -- LaTeX that fits a default A4 article ------------------------------------------------------------------
#: The default run's configurations (config/config.yaml), each standing in for one of the affine runs.
DEFAULT_RUN = {"rnr": "affine_small", "rnr_no_intermediate": "affine_large", "idir_cpu": "affine_small"}
DEFAULT_RUN["demons"] = "affine_large"


def _default_configurations() -> dict[str, dict]:
    import yaml

    return yaml.safe_load((Path(__file__).parents[1] / "config" / "config.yaml").read_text())["configurations"]


@pytest.fixture(scope="module")
def default_shaped(exact_tables, tmp_path_factory) -> Path:
    """The exact runs as the default run makes them: initial and the four configurations of config/config.yaml
    (their settings and display labels), tabled for the phantom."""
    configured = _default_configurations()
    runs = tmp_path_factory.mktemp("default_shaped") / "runs"
    shutil.copytree(exact_tables.parent / "runs" / "initial", runs / "initial")
    for name, source in DEFAULT_RUN.items():
        shutil.copytree(exact_tables.parent / "runs" / source, runs / name)
        settings = {"method": "rnr", **{k: v for k, v in configured[name].items() if k != "label"}}
        for path in (runs / name).rglob(layout.METRICS_JSON):
            record = json.loads(path.read_text())
            record["configuration"] = name
            record["run"]["settings"] = {**settings, "seed": record["run"]["settings"]["seed"]}
            path.write_text(json.dumps(record))
    labels = [f"--label={n}={c['label']}" for n, c in configured.items() if c.get("label")]
    out = runs.parent / "tables"
    argv = ["tables", "--runs-dir", str(runs), "--out", str(out), "--compare-to", "rnr", "--dataset", "phantom"]
    assert cli.main([*argv, "--configurations", "initial", *DEFAULT_RUN, *labels]) == 0
    return out


def _widest_view() -> View:
    """tre.tex's layout at its widest: ten cases, two-digit 'mean ± std' everywhere, bold (a row's lowest mean)
    in every registered column, and in the compared columns the two marks a cell can carry together (better or
    worse, and not converged); the default run's labels, the reference marked. ``initial`` is never bold or
    marked, the reference never tested against itself."""
    from rnr.reporting.table_specs import with_columns

    labels = {n: c["label"] for n, c in _default_configurations().items() if c.get("label")}
    configs = ["initial", *labels]
    headings = ["initial", *(labels[c] + (" (ref.)" if c == "rnr" else "") for c in labels)]
    table = Table("widest", "widest", ("tex",), "t", "d", "c", (Column("case"),))
    columns = tuple(Column(c, h, "", "mean_std") for c, h in zip(configs, headings, strict=True))

    def cells(spread, marks: str) -> list[Cell]:
        return [Cell(88.88, spread, "" if c in ("initial", "rnr") else marks, c != "initial") for c in configs]

    rows = [[Cell(case), *cells(88.88, "\u2020\u2021")] for case in range(1, 11)]
    rows.append([Cell("mean"), *cells((88.88, 88.88), "\u2020")])
    return View(with_columns(table, (*table.columns, *columns)), "Widest", [Block(rows, "exact TRE", 1)], ["x"])


@pytest.mark.parametrize("size", ["10pt", "11pt", "12pt"])
def test_latex_tables_fit_an_a4_article_without_overfull_boxes(default_shaped, tmp_path, size):
    """tre.tex and tre_exact.tex of a default-shaped phantom run (exact motion, four configurations with their
    display labels), and the widest such table, compile in \\documentclass[<size>,a4paper]{article} with
    booktabs and nothing overfull: the log of pdflatex has no 'Overfull \\hbox'."""
    import shutil as sh

    from rnr.reporting.table_render import latex

    tre = (default_shaped / "tre.tex").read_text()
    exact = (default_shaped / "tre_exact.tex").read_text()
    assert r"\label{tab:phantom-tre}" in tre and r"\label{tab:phantom-tre-exact}" in exact
    assert "(built-in 4DCT phantom)" in tre.split("\n")[2] and r"RNR \\ (ref.)" in tre
    assert r"$|\varphi(x) - \varphi_{\mathrm{true}}(x)|$" in exact and "phi_true" not in exact
    if sh.which("pdflatex") is None:
        pytest.skip("pdflatex is not installed (Debian: texlive-latex-base texlive-latex-recommended)")
    (tmp_path / "widest.tex").write_text(latex(_widest_view()))
    inputs = "\n".join(
        rf"\input{{{p}}}\clearpage" for p in (default_shaped / "tre.tex", default_shaped / "tre_exact.tex")
    )
    log = _pdflatex(tmp_path / "doc.tex", f"{size},a4paper", f"{inputs}\n\\input{{widest.tex}}")
    # Too wide, or (a float with its notes) too tall for the page.
    overfull = [line for line in log.splitlines() if "Overfull \\hbox" in line or "Float too large" in line]
    assert not overfull, f"{size}: {overfull}"


def test_each_table_says_whether_it_is_the_primary_one(tables, exact_tables):
    """With exact motion, tre_exact is the primary table and tre says it is not (the rounding floor of the
    landmark files); without, tre is. The ‡ note names the tre.csv columns that reproduce it, the snapped
    table promises no interval it lacks."""
    exact_tre, exact = (exact_tables / "tre.md").read_text(), (exact_tables / "tre_exact.md").read_text()
    assert exact_tre.split("\n\n")[2].startswith("Not the primary table of this dataset")
    assert "floor" in exact_tre and "`tre_exact`" in exact_tre
    assert exact.split("| mean |")[-1].split("\n\n")[1].startswith("The primary TRE table of this dataset")
    real = (tables / "tre.md").read_text()
    assert "The primary TRE table of this dataset (it carries no exact motion)." in real and "floor" not in real
    assert "`loss_relative_drop` > 0.01 and `loss_noise_z` > 3" in exact_tre
    summary = pd.read_csv(tables / "tre.csv")
    assert {"loss_relative_drop", "loss_noise_z", "converged"} <= set(summary.columns)
    snapped = (tables / "tre_snapped.md").read_text()
    assert "no interval" in snapped and "bootstrap interval" not in snapped
