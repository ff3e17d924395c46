"""Figures for a page: every dataset figure and per-run panel fits 6.3 in (or landscape A4) at >= 8 pt with Type 42
fonts, for 1 and 10 configurations over 10 cases; ``rnr figures`` end to end on real ``rnr evaluate`` metrics."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from evaluation_case import AFFINE_CONFIGS, make_runs

from rnr import cli, figure_style, layout
from rnr.evaluation import panels
from rnr.io import write_csv
from rnr.reporting import plots

FIGURES = ("tre_distribution", "tre_mean_per_configuration", "tre_before_after", "folding_runtime", "loss_curves")
#: Written by `rnr figures` next to FIGURES: the paired differences (two or more registered configurations).
STAT_FIGURES = ("paired_differences",)
# Long, realistic names: the widest labels the figures must place.
NAMES = (
    "rnr_default",
    "rnr_no_intermediate",
    "rnr_trajectory_pairing",
    "idir_bending_1e-4",
    "demons_sigma1.5",
    "rnr_mask30",
    "rnr_lr3e-4",
    "rnr_batch20000",
    "idir_no_bending",
    "demons_sigma3",
)


def synthetic(n_cases: int, n_configs: int, folding: bool = True, n_landmarks: int = 12, seed: int = 0):
    """(summary, landmarks, losses) shaped like tables.summary_frame / landmark_frame and loss.csv logs."""
    rng = np.random.default_rng(seed)
    configs = ["initial", *NAMES[:n_configs]]
    summary, landmarks, losses = [], [], {}
    for case in range(1, n_cases + 1):
        before = rng.uniform(3, 15)
        for j, config in enumerate(configs):
            tre = rng.gamma(2.0, (before if config == "initial" else rng.uniform(0.8, 2.5)) / 2, n_landmarks)
            landmarks += [
                {"case": case, "configuration": config, "landmark": i, "tre_mm": v} for i, v in enumerate(tre)
            ]
            summary.append(
                {
                    "case": case,
                    "configuration": config,
                    "tre_mean_mm": tre.mean(),
                    "tre_std_mm": tre.std(ddof=1),
                    "folding_fraction": rng.choice([0, 1e-4, 3e-3]) if folding and config != "initial" else 0.0,
                    "runtime_s": 0.0 if config == "initial" else rng.uniform(20, 2000) * j,
                    "device": "none" if config == "initial" else "cuda (NVIDIA H100 80GB HBM3)",
                }
            )
            if config != "initial":
                it = np.arange(1, 401)
                loss = 0.05 + 0.3 * np.exp(-it / rng.uniform(40, 300)) + 0.004 * rng.normal(size=len(it))
                losses[(config, case)] = pd.DataFrame({"iteration": it, "loss": loss})
    return pd.DataFrame(summary), pd.DataFrame(landmarks), losses


def _build(name: str, n_configs: int, page: str, folding: bool = True):
    summary, landmarks, losses = synthetic(10, n_configs, folding)
    data = {"tre_distribution": landmarks, "loss_curves": losses}.get(name, summary)
    return plots.BUILDERS[name](data, page=page)


def assert_fits(fig, tmp_path: Path, width_in: float = 6.3, height_in: float = 9.0) -> dict[str, float]:
    """Size within the page, every drawn text >= 8 pt, no two texts overlapping, nothing drawn beyond the edges,
    no Type 3 font in the PDF."""
    m = figure_style.figure_metrics(fig)
    assert m["width_in"] <= width_in + 1e-9 and m["height_in"] <= height_in + 1e-9, m
    assert m["n_texts"] > 0 and m["min_font_pt"] >= figure_style.MIN_FONT_PT, m
    assert m["spill_in"] <= 0.02 and m["overlapping_texts"] == 0, m
    pdf = figure_style.save_figure(fig, tmp_path / "figure", formats=("pdf",))[0].read_bytes()
    assert b"/Type3" not in pdf
    assert re.search(rb"/Subtype\s*/(TrueType|CIDFontType2)", pdf), "no TrueType (Type 42) font embedded"
    return m


@pytest.mark.parametrize("name", FIGURES)
# Ten configurations on the text width only in the full suite (the landscape test draws ten in the quick tier).
@pytest.mark.parametrize("n_configs", [1, pytest.param(10, marks=pytest.mark.slow)])
def test_dataset_figure_fits_the_text_width(name, n_configs, tmp_path):
    assert_fits(_build(name, n_configs, "text"), tmp_path, *figure_style.PAGES["text"])


@pytest.mark.parametrize("name", FIGURES)
def test_dataset_figure_fits_a_landscape_page(name, tmp_path):
    m = assert_fits(_build(name, 10, "landscape"), tmp_path, *figure_style.PAGES["landscape"])
    assert m["width_in"] <= 9.7


def test_every_figure_has_a_question_in_its_docstring():
    assert set(plots.BUILDERS) == set(FIGURES) == set(plots.QUESTIONS)
    for name, builder in plots.BUILDERS.items():
        first_paragraph = " ".join(builder.__doc__.strip().split("\n\n")[0].split())
        assert first_paragraph.startswith(plots.QUESTIONS[name]), name
    with pytest.raises(ValueError, match="page"):
        _build("tre_mean_per_configuration", 1, "a3")


def test_no_folding_drops_the_folding_panel_and_says_so():
    fig = _build("folding_runtime", 3, "text", folding=False)
    assert len(fig.axes) == 1 and "runtime" in fig.axes[0].get_xlabel()
    assert "No folding" in " ".join(t.get_text() for t in figure_style.drawn_texts(fig))
    fig = _build("folding_runtime", 3, "text", folding=True)
    assert len(fig.axes) == 2 and "folded" in fig.axes[0].get_xlabel()


def test_loss_curves_mark_the_run_that_has_not_converged():
    _, _, losses = synthetic(3, 2)
    it = np.arange(1, 201)
    losses[("rnr_no_intermediate", 2)] = pd.DataFrame({"iteration": it, "loss": 0.1 + 0.3 * np.exp(-it / 150)})
    for n in (1, 3):
        losses[("rnr_no_intermediate", n)] = pd.DataFrame({"iteration": it, "loss": 0.1 + 0.3 * np.exp(-it / 10)})
    fig = plots.build_loss_curves(losses, order=["rnr_default", "rnr_no_intermediate"])
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles[1] == "rnr_no_intermediate\n1 of 3 not converged"
    styles = [line.get_linestyle() for line in fig.axes[1].get_lines()]
    assert styles == ["-", "--", "-"]
    assert all(ax.get_ylabel() in ("", "loss (dimensionless)") for ax in fig.axes)


# -- per-run panels ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def slices():
    """A DIR-Lab-like geometry (256 x 256 x 94 at 0.97 x 0.97 x 2.5 mm) with an ellipsoid mask."""
    size, spacing = (256, 256, 94), (0.97, 0.97, 2.5)
    z, y, x = np.meshgrid(*(np.arange(n) for n in size[::-1]), indexing="ij")
    mask = ((x - 128) / 80) ** 2 + ((y - 128) / 70) ** 2 + ((z - 47) / 38) ** 2 < 1
    geom = panels.slice_geometry(size, spacing, mask)
    views = panels.take_views(np.where(mask, -850.0, 40.0), geom)
    return geom, mask, views


def test_step_panel_fits_names_the_fixed_phase_and_quotes_mm(slices, tmp_path):
    geom, _, views = slices
    warped = {v: a + 30 for v, a in views.items()}
    fig = panels.build_step_panel(geom, views, views, warped, "T40", "T50", "case 1, x: fixed T40, moving T50")
    assert_fits(fig, tmp_path)
    text = " ".join(t.get_text() for t in figure_style.drawn_texts(fig))
    assert "fixed T40" in text and "T00" not in text
    assert f"coronal, y = {geom.index['coronal'] * 0.97:.1f} mm" in text
    assert f"axial, z = {geom.index['axial'] * 2.5:.1f} mm" in text


def test_detj_panel_quotes_min_max_over_mask_voxels(slices, tmp_path):
    geom, mask, views = slices
    inside = {v: panels.take_views(mask, geom)[v] for v in panels.VIEWS}
    det = {v: np.where(inside[v], 1.25, -7.0) for v in panels.VIEWS}  # wild values outside the lungs only
    fig = panels.build_detj_panel(geom, det, mask, "det J")
    assert_fits(fig, tmp_path)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert len(titles) == 2 and all("mask voxels: min 1.25, max 1.25" in t for t in titles)


def test_loss_panel_has_y_labels_and_the_convergence_verdict(tmp_path):
    it = np.arange(1, 301)
    frame = pd.DataFrame(
        {
            "iteration": it,
            "loss": 0.1 + np.exp(-it / 200),
            "dissimilarity": 0.1 + np.exp(-it / 200),
            "dissimilarity_T50_phi1_vs_T40": np.exp(-it / 100),
            "dissimilarity_T50_phi2_vs_T30": np.exp(-it / 90),
            "elapsed_s": it * 0.1,
        }
    )
    fig = panels.build_loss_curve(frame, "case 1, rnr_default: optimisation log")
    assert_fits(fig, tmp_path)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 3 and all(ax.get_ylabel().endswith("(dimensionless)") for ax in axes)
    assert axes[0].get_title().startswith("loss: not converged")


# -- rnr figures end to end -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory) -> Path:
    runs = make_runs(tmp_path_factory.mktemp("results"), cases=(1, 2, 3))
    it = np.arange(1, 101)
    for name in AFFINE_CONFIGS:
        for n in (1, 2, 3):
            write_csv(runs / name / f"case{n}" / layout.LOSS_CSV, pd.DataFrame({"iteration": it, "loss": 1 / it}))
    return runs


def test_figures_are_real_png_and_pdf_files(runs_dir, tmp_path):
    out = tmp_path / "figures"
    assert cli.main(["figures", "--runs-dir", str(runs_dir), "--out", str(out)]) == 0
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted(f"{name}.{ext}" for name in FIGURES + STAT_FIGURES for ext in ("png", "pdf"))
    for name in FIGURES:
        png, pdf = (out / f"{name}.png").read_bytes(), (out / f"{name}.pdf").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000, name
        assert pdf[:5] == b"%PDF-" and len(pdf) > 5_000 and b"/Type3" not in pdf, name


def test_figures_of_a_subset_and_errors(runs_dir, tmp_path, capsys):
    out = tmp_path / "subset"
    argv = ["figures", "--runs-dir", str(runs_dir), "--out", str(out), "--configurations", "affine_small"]
    assert cli.main([*argv, "--page", "landscape"]) == 0
    assert (out / "folding_runtime.png").stat().st_size > 10_000
    assert cli.main(["figures", "--runs-dir", str(runs_dir), "--out", str(out), "--configurations", "nonexistent"]) == 2
    assert "nonexistent" in capsys.readouterr().err
    assert cli.main(["figures", "--runs-dir", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert "runs folder not found" in capsys.readouterr().err


# -- what a reader of one figure must be able to tell -------------------------------------------------------
def _segments(ax) -> list[np.ndarray]:
    """The line segments of an axes' error bars (matplotlib draws them as LineCollections)."""
    from matplotlib.collections import LineCollection

    return [np.asarray(s) for c in ax.collections if isinstance(c, LineCollection) for s in c.get_segments()]


def test_figures_name_configurations_by_their_display_labels():
    """rnr figures relabels its frames: every figure draws the labels, never the configuration names."""
    from rnr.commands.figures import relabel

    summary, _, _ = synthetic(4, 2)
    labels = {NAMES[0]: "Method A, full", NAMES[1]: "Method B"}
    fig = plots.build_tre_mean_per_configuration(relabel(summary, labels), ["initial", *labels.values()])
    ticks = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert ticks == ["initial", "Method A, full", "Method B"]


def test_one_distinct_colour_per_configuration_and_another_scheme_for_cases():
    """Up to nine registered configurations get colours at least 0.25 apart in RGB (the colour-blind palette's
    orange and vermillion, 0.13 apart, never both among the first five), the same in every figure; cases take
    viridis, none of whose colours is a configuration's."""
    configs = ["initial", *(f"c{i}" for i in range(9))]
    colours = plots.palette(configs)
    registered = [np.array(colours[c]) for c in configs[1:]]
    for n in (4, 5):
        pairs = [(a, b) for i, a in enumerate(registered[:n]) for b in registered[i + 1 : n]]
        assert min(np.linalg.norm(a - b) for a, b in pairs) > 0.25, n
    assert plots.palette(configs[:3]) == {c: colours[c] for c in configs[:3]}  # a prefix keeps its colours
    cases = plots.case_palette(list(range(1, 11)))
    assert not {tuple(c) for c in cases.values()} & {tuple(c) for c in colours.values()}


def test_mean_per_configuration_whiskers_are_the_tables_bootstrap_interval():
    from rnr.reporting import stats
    from rnr.reporting.tables import BOOTSTRAP_SEED, N_BOOT

    summary, _, _ = synthetic(6, 2)
    fig = plots.build_tre_mean_per_configuration(summary)
    expected = stats.mean_over_cases(summary, n_boot=N_BOOT, seed=BOOTSTRAP_SEED).set_index("configuration")
    whiskers = sorted((float(s[0, 1]), float(s[0, 0]), float(s[1, 0])) for s in _segments(fig.axes[0]))
    configs = ["initial", *NAMES[:2]]
    for k, config in enumerate(configs):
        row = next(w for w in whiskers if abs(w[0] - k) < 1e-9)
        assert row[1:] == pytest.approx(
            (expected.loc[config, "tre_mean_ci_low_mm"], expected.loc[config, "tre_mean_ci_high_mm"])
        )


def test_before_after_whiskers_stop_at_zero():
    """A case whose std exceeds its mean: the lower whisker ends at 0 mm, the upper one at mean + std."""
    summary, _, _ = synthetic(3, 1)
    summary.loc[summary.index[1], ["tre_mean_mm", "tre_std_mm"]] = (1.0, 3.0)
    fig = plots.build_tre_before_after(summary)
    ends = np.concatenate([s[:, 0] for s in _segments(fig.axes[0])])
    assert ends.min() == pytest.approx(0.0) and ends.max() >= 4.0 - 1e-9
