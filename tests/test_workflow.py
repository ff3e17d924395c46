"""The Snakemake workflow, run for real: lint, dry runs of the shipped configs, config validation, and a
tiny phantom run (2 cases x 2 configurations) from a temporary directory that is killed after its first
registration, resumed, and then checked: every table row, TRE after < TRE before, the HTML report."""

from __future__ import annotations

import base64
import html
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.workflow

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "workflow_configs" / "tiny.yaml"


def _env() -> dict[str, str]:
    """The test interpreter's bin folder first on PATH, so the rules find this environment's `rnr`."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _command(workdir: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        *args,
    ]


def snakemake(workdir: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(_command(workdir, *args), capture_output=True, text=True, env=_env(), timeout=timeout)


def job_counts(output: str) -> dict[str, int]:
    """The "Job stats" table of a (dry) run: rule -> number of jobs."""
    block = output.split("Job stats:", 1)[1]
    counts = {}
    for line in block.splitlines()[3:]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        counts[parts[0]] = int(parts[1])
    return counts


def test_lint_is_clean(tmp_path):
    result = snakemake(tmp_path, "--lint")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Lints for" not in result.stdout + result.stderr


def test_dry_run_default_config(tmp_path):
    result = snakemake(tmp_path, "--dry-run", "--cores", "4", "all")
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    n_cases, n_configs = len(config["cases"]), len(config["configurations"])
    assert n_cases == 10
    assert job_counts(result.stdout) == {
        "all": 1,
        "phantom": 1,
        "convert": n_cases,
        "segment": n_cases,
        "settings": n_configs,
        "register": n_cases * n_configs,
        "evaluate": n_cases * (n_configs + 1),  # `initial` too
        "tables": 1,
        "figures": 1,
        "total": 4 + 3 * n_cases + n_configs + 2 * n_cases * n_configs,
    }
    assert "results/phantom/tables/tre.md" in result.stdout


def test_seeds_and_cases_from_the_command_line(tmp_path):
    """`--config seeds=[3,4] cases=[1,2]`: Snakemake hands the list items over as strings; they still count."""
    result = snakemake(tmp_path, "--dry-run", "--cores", "4", "all", "--config", "seeds=[3,4]", "cases=[1,2]")
    assert result.returncode == 0, result.stderr
    n_configs = len(yaml.safe_load((REPO / "config" / "config.yaml").read_text())["configurations"])
    assert job_counts(result.stdout)["register"] == 2 * 2 * n_configs
    assert "results/phantom/runs/rnr/case2/seed4/checkpoint.pt" in result.stdout


def test_dry_run_dirlab_config(tmp_path):
    """config/dirlab.yaml merges over the default: five RNR configurations at the model defaults and the four
    baselines, GPU jobs."""
    (tmp_path / "dirlab").mkdir()
    result = snakemake(
        tmp_path,
        "all",
        "--dry-run",
        "--cores",
        "4",
        "--configfile",
        str(REPO / "config" / "dirlab.yaml"),
        "--config",
        f"dirlab_dir={tmp_path / 'dirlab'}",
        "cases=[1,2]",
    )
    assert result.returncode == 0, result.stderr
    counts = job_counts(result.stdout)
    assert counts["register"] == 2 * 9 * 3 and counts["settings"] == 9 and "phantom" not in counts  # 3 seeds
    assert "runs/idir_cpu/" not in result.stdout  # config.yaml's CPU-sized IDIR is switched off (false)
    assert "gpu=1" in result.stdout
    for name in (
        "rnr",
        "rnr_no_intermediate",
        "rnr_no_grad_penalty",
        "rnr_shared_weights",
        "rnr_trajectory",
        "idir",
        "demons",
        "elastix",
        "ants",
    ):
        assert f"results/dirlab/runs/{name}/case2/seed3/checkpoint.pt" in result.stdout


def test_dry_run_baselines_config(tmp_path):
    """config/baselines.yaml adds elastix and ANTs to the default phantom run."""
    result = snakemake(
        tmp_path, "all", "--dry-run", "--cores", "4", "--configfile", str(REPO / "config" / "baselines.yaml")
    )
    assert result.returncode == 0, result.stderr
    n_default = len(yaml.safe_load((REPO / "config" / "config.yaml").read_text())["configurations"])
    assert job_counts(result.stdout)["register"] == 10 * (n_default + 2)
    for name in ("elastix", "ants"):
        assert f"results/phantom/runs/{name}/case10/seed3/checkpoint.pt" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--config", "bogus=1"], "('bogus' was unexpected)"),
        (["--config", "dataset=dirlab"], "dataset is 'dirlab' but dirlab_dir is not set"),
        (["--config", "masks={method: magic}"], "'magic' is not one of"),
        (["--config", "configurations={initial: {}}"], "should not be valid under {'const': 'initial'}"),
        (["--config", "configurations={rnr: {iterationz: 5}}"], "unknown setting 'iterationz'"),
        (["--config", "configurations={d: {method: demons, lr: 0.1}}"], "'lr' belongs to method rnr/idir, not demons"),
        (["--config", "configurations={rnr: {device: cuda}}"], "use_gpu decides the device"),
        (["--config", "use_gpu=maybe"], "'maybe' is not of type 'boolean'"),
    ],
)
def test_bad_config_is_rejected(tmp_path, args, message):
    result = snakemake(tmp_path, "--dry-run", *args)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr


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


def test_a_minimal_config_file_gets_every_default(tmp_path):
    """A user's own file with only dataset, dirlab_dir and one configuration: the schema fills the rest."""
    from snakemake.utils import validate

    minimal = {"dataset": "dirlab", "dirlab_dir": str(tmp_path), "configurations": {"mine": {"iterations": 5}}}
    config = dict(minimal)
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"), set_default=True)
    assert config["cases"] == list(range(1, 11)) and config["use_gpu"] is False
    assert config["register_threads"] == 1 and config["masks"] == {"method": "auto", "weights": None}
    assert config["phantom"] == {"scale": 1.0, "seed": 0}
    path = tmp_path / "minimal.yaml"
    path.write_text(yaml.safe_dump(minimal))
    result = snakemake(tmp_path, "all", "--dry-run", "--configfile", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "results/dirlab/runs/mine/case10/seed3/checkpoint.pt" in result.stdout


# -- a real tiny run ---------------------------------------------------------------------------------------
def _finished_registrations(workdir: Path) -> dict[Path, float]:
    """Registrations Snakemake has finished: their benchmark record exists (written when the job ends)."""
    done = {}
    results = workdir / "results" / "phantom"
    for bench in (results / "benchmarks" / "register").glob("*/case*/seed*.tsv"):
        checkpoint = results / "runs" / bench.parent.parent.name / bench.parent.name / bench.stem / "checkpoint.pt"
        if checkpoint.is_file():
            done[checkpoint] = checkpoint.stat().st_mtime_ns
    return done


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> dict:
    """Run the tiny config in a fresh directory, kill it after the first registration, resume it."""
    workdir = tmp_path_factory.mktemp("tiny_workflow")
    args = ("--configfile", str(TINY), "--cores", "1", "all")
    with open(workdir / "first.log", "w") as log:
        proc = subprocess.Popen(
            _command(workdir, *args), stdout=log, stderr=subprocess.STDOUT, env=_env(), start_new_session=True
        )
        try:
            deadline = time.monotonic() + 600
            while not _finished_registrations(workdir):
                assert proc.poll() is None, (workdir / "first.log").read_text()
                assert time.monotonic() < deadline, "no registration finished within 10 min"
                time.sleep(0.5)
            time.sleep(2.0)  # let Snakemake record the job as finished and start the next one
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    finished = _finished_registrations(workdir)
    unlock = snakemake(workdir, "--configfile", str(TINY), "--unlock")
    assert unlock.returncode == 0, unlock.stderr
    resumed = snakemake(workdir, *args, "--rerun-incomplete")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    return {"workdir": workdir, "finished_before_kill": finished, "resume_log": resumed.stdout + resumed.stderr}


@pytest.mark.slow
def test_resume_keeps_finished_registrations(tiny_run):
    finished = tiny_run["finished_before_kill"]
    assert finished, "the first run was killed before any registration finished"
    for checkpoint, mtime in finished.items():
        assert checkpoint.stat().st_mtime_ns == mtime, f"{checkpoint} was recomputed after the resume"
    n_done = len(finished)
    assert len(re.findall(r"rule register:", tiny_run["resume_log"])) == 4 - n_done


@pytest.mark.slow
def test_tiny_run_tables(tiny_run):
    config = yaml.safe_load(TINY.read_text())
    results = tiny_run["workdir"] / "results" / "phantom"
    tre = pd.read_csv(results / "tables" / "tre.csv")
    registered = [name for name, settings in config["configurations"].items() if settings is not False]
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
    # Scored against the phantom's exact motion: at this test scale (5.6 mm voxels) rounding the landmark files
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
    assert (results / "tables" / "folding.csv").is_file()
    assert sorted(p.name for p in (results / "figures").glob("*.png"))
    for case in config["cases"]:
        for name in configurations:
            seed = "seed0" if name == "initial" else "seed3"
            figures = results / "runs" / name / f"case{case}" / seed / "figures"
            assert sorted(figures.glob("*.png")), (name, case)
    settings = yaml.safe_load((results / "settings" / "rnr.yaml").read_text())
    assert settings == {**config["configurations"]["rnr"], "device": "cpu"}


@pytest.fixture(scope="module")
def tiny_report(tiny_run) -> Path:
    workdir = tiny_run["workdir"]
    report = workdir / "report.html"
    result = snakemake(workdir, "--configfile", str(TINY), "--report", str(report))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ERROR" not in result.stdout + result.stderr  # a caption that docutils could not render
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
    from rnr import plots
    from rnr.layout import sortable_number
    from rnr.tables import HTML_TABLES, TABLES

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
    # Dataset figures: each caption states its own question (plots.QUESTIONS).
    figures = {results[p]["labels"]["figure"]: _text(results[p]["caption"]) for p in categories["Figures"]["Other"]}
    assert set(plots.QUESTIONS) <= set(figures)
    for name, caption in figures.items():
        assert caption.startswith(plots.QUESTIONS.get(name, "")), name
        assert not caption.startswith("Figure"), f"{name} has no caption of its own"
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
    assert "the full map" in captions[("rnr", "slices_T00_T50")]
    assert "intermediate step from T40 to T50" in captions[("rnr", "slices_T40_T50")]
    assert "compress, expand or fold" in captions[("rnr", "detj")]
    assert "did the optimisation settle" in captions[("rnr", "loss")]
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
    for name in ("landing.png", "tables.png", "tre_page.png", "stats.png"):
        assert (out / name).stat().st_size > 10_000, name


@pytest.mark.slow
def test_complete_run_has_nothing_to_do(tiny_run):
    result = snakemake(tiny_run["workdir"], "--configfile", str(TINY), "--dry-run", "all")
    assert result.returncode == 0, result.stderr
    assert "Nothing to be done" in result.stdout + result.stderr


@pytest.mark.slow
def test_use_gpu_without_cuda_fails_naming_the_key(tiny_run, tmp_path):
    """use_gpu: true on a machine without CUDA: the registration fails; its log names use_gpu and CUDA."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    workdir = shutil.copytree(tiny_run["workdir"], tmp_path / "copy", symlinks=True)
    target = "results/phantom/runs/rnr/case1/seed3/checkpoint.pt"
    # The edited setting (device cuda) reruns the settings file and so the registration.
    result = snakemake(workdir, "--configfile", str(TINY), "--cores", "1", target, "--config", "use_gpu=true")
    assert result.returncode != 0
    log = (workdir / "results" / "phantom" / "logs" / "register" / "rnr" / "case1" / "seed3.log").read_text()
    assert "use_gpu=True -> device cuda" in log and "needs CUDA" in log
    assert "CUDA is not available" in log
    assert not (workdir / target).exists()  # no half-finished run that looks complete


@pytest.mark.slow
def test_dirlab_dataset_reads_a_dirlab_folder(phantom_dataset, tmp_path):
    """dataset=dirlab on a folder in the DIR-Lab layout (conftest's phantom, which has Masks/): convert,
    the provided mask via masks.method auto, and the identity evaluation of case 1."""
    import json

    import numpy as np

    from rnr.case import load_case
    from rnr.phantom import load_truth

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
    assert result.returncode == 0, result.stdout + result.stderr
    case = load_case(tmp_path / "results" / "dirlab" / "data" / "case1")
    assert np.array_equal(case.load_mask(), load_truth(phantom_dataset, 1).mask_T00)
    assert "provided mask" in (tmp_path / "results" / "dirlab" / "logs" / "segment" / "case1.log").read_text()
    metrics = json.loads((tmp_path / target).read_text())
    assert metrics["tre"]["mean_mm"] == pytest.approx(3.89, abs=0.05)  # the phantom's calibrated initial TRE
