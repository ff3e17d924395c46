"""The SLURM profile, proved on a real single-node SLURM cluster (started and stopped by this module).

Static checks of workflow/profiles/slurm/config.yaml run everywhere. The cluster tests need root and the
Debian packages (slurmctld, slurmd, slurm-client, munge); where SLURM cannot be started they are skipped
with the reason, unless RNR_REQUIRE_SLURM=1 (for CI once the packages installed), which turns the skip
into a failure so a broken bring-up cannot hide.

The cluster has one node with two fake GPUs (gres ``gpu:fake:2`` on /dev/null and /dev/zero): SLURM
schedules and allocates them (a job that asked for one sees CUDA_VISIBLE_DEVICES), but there is no CUDA,
so the registrations themselves run on the CPU (config ``use_gpu: false``, device ``cpu``) while the
profile's ``register: gpu: 1`` still requests a GPU for each of them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from slurm_cluster import ClusterUnavailable, SlurmCluster, start_cluster

REPO = Path(__file__).resolve().parents[1]
SLURM_PROFILE = REPO / "workflow" / "profiles" / "slurm" / "config.yaml"
TEST_OVERRIDES = REPO / "tests" / "slurm" / "profile" / "config.yaml"
TINY_CONFIG = REPO / "tests" / "workflow_configs" / "tiny.yaml"
SNAKEFILE = REPO / "Snakefile"
REGISTER_RULE = "register"
# Generous: a loaded 2-core CI machine runs the tiny workflow's CPU jobs two at a time.
SNAKEMAKE_TIMEOUT_S = 480


# -- the profile file itself (no cluster needed) ------------------------------------------------------


def _profile() -> dict:
    return yaml.safe_load(SLURM_PROFILE.read_text())


def test_profile_submits_through_slurm_with_site_resources():
    profile = _profile()
    assert profile["executor"] == "slurm"
    assert isinstance(profile["jobs"], int) and profile["jobs"] >= 1
    defaults = profile["default-resources"]
    for key in ("slurm_partition", "mem_mb", "runtime"):
        assert key in defaults, f"default-resources lacks {key}"


def test_profile_requests_a_gpu_for_registration_only():
    profile = _profile()
    # A gpu or gpu_model in default-resources would reach every CPU job (`--gpus=<model>:0` or `:1`).
    assert not {"gpu", "gpus", "gpu_model", "gres"} & set(profile["default-resources"])
    gpu_rules = {
        rule for rule, res in profile["set-resources"].items() if {"gpu", "gpus", "gpu_model", "gres"} & set(res)
    }
    assert gpu_rules == {REGISTER_RULE}
    assert profile["set-resources"][REGISTER_RULE]["gpu"] == 1


def test_profile_gpu_rule_exists_in_workflow():
    rule_files = [SNAKEFILE, *sorted((REPO / "workflow" / "rules").glob("*.smk"))]
    text = "\n".join(p.read_text() for p in rule_files)
    assert re.search(rf"^rule {REGISTER_RULE}\s*:", text, re.MULTILINE), (
        f"the slurm profile sets resources of rule {REGISTER_RULE!r}, which the workflow does not define"
    )


def test_every_profile_entry_is_commented():
    """Each key line has a comment on the line itself or a comment line (block) right above it."""
    for path in (SLURM_PROFILE, TEST_OVERRIDES):
        previous = ""
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            stripped = line.strip()
            if not stripped:
                previous = ""
                continue
            if not stripped.startswith("#") and re.match(r"^[\w-]+\s*:", stripped):
                assert "#" in stripped or previous.startswith("#"), f"{path}:{number}: {stripped!r} has no comment"
            previous = stripped


# -- on a real cluster -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster():
    try:
        # Two fake GPUs, so that two registrations (one CPU thread each on a 2-core machine) run at once.
        running = start_cluster(gpus=2)
    except ClusterUnavailable as exc:
        if os.environ.get("RNR_REQUIRE_SLURM") == "1":
            pytest.fail(f"RNR_REQUIRE_SLURM=1 but the SLURM test cluster did not start: {exc}")
        pytest.skip(f"cannot start a SLURM test cluster: {exc}")
    try:
        yield running
    finally:
        running.stop()


def _merge(base: dict, over: dict) -> dict:
    """`over` merged into `base`, mappings key by key (so an override keeps the base's other keys)."""
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return out


def _test_profile(folder: Path) -> Path:
    """The real slurm profile with the test cluster's overrides, as a profile folder."""
    folder.mkdir(parents=True)
    merged = _merge(_profile(), yaml.safe_load(TEST_OVERRIDES.read_text()))
    (folder / "config.yaml").write_text(yaml.safe_dump(merged, sort_keys=False))
    return folder


def _run_snakemake(args: list[str], workdir: Path, cluster: SlurmCluster) -> str:
    """Run Snakemake on the cluster from `workdir`; return its log (stdout+stderr), fail with its tail."""
    env = dict(os.environ)
    # Jobs run `python -m snakemake` with this interpreter and call `rnr`: both from this environment.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        # Threads beyond the node's CPUs would make sbatch refuse the job; --verbose logs the sbatch calls.
        "--max-threads",
        str(cluster.cpus),
        "--verbose",
        "--nocolor",
        *args,
    ]
    try:
        proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=SNAKEMAKE_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout or b""
        log = out.decode(errors="replace") if isinstance(out, bytes) else out
        (workdir / "snakemake.log").write_text(log)
        # The fixture's teardown cancels the jobs this Snakemake left in the queue.
        pytest.fail(f"snakemake took over {SNAKEMAKE_TIMEOUT_S} s\n{log[-6000:]}\n{cluster.log_tails()}")
    log = proc.stdout + proc.stderr
    (workdir / "snakemake.log").write_text(log)
    assert proc.returncode == 0, f"snakemake failed ({proc.returncode}):\n{log[-6000:]}"
    return log


def _sbatch_calls(log: str) -> dict[str, list[str]]:
    """Rule name -> the sbatch command lines the SLURM executor logged (at --verbose) for that rule."""
    calls: dict[str, list[str]] = {}
    for line in log.splitlines():
        if "sbatch call: sbatch " not in line:
            continue
        call = line.split("sbatch call: ", 1)[1].split(' --wrap="', 1)[0]
        rule = re.search(r"--comment '?rule_(\w+?)(?:_wildcards_\S*)?'?(?:\s|$)", call)
        assert rule, f"no rule comment in {call}"
        calls.setdefault(rule.group(1), []).append(call)
    return calls


def _slurm_jobs(run_id: str) -> list[dict[str, str]]:
    """The jobs of one Snakemake run (named by its SLURM run ID) that slurmctld still remembers (finished
    ones for MinJobAge), each as its key=value fields."""
    out = subprocess.run(
        ["scontrol", "show", "job", "--oneliner"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    jobs = [dict(f.split("=", 1) for f in line.split() if "=" in f) for line in out.splitlines() if line.strip()]
    return [job for job in jobs if job.get("JobName") == run_id]


def _assert_gpu_on_registration_only(log: str) -> dict[str, list[str]]:
    calls = _sbatch_calls(log)
    assert REGISTER_RULE in calls, f"no {REGISTER_RULE} job was submitted; submitted rules: {sorted(calls)}"
    for rule, rule_calls in calls.items():
        for call in rule_calls:
            if rule == REGISTER_RULE:
                assert " --gpus=1" in call, call
            else:
                assert "--gpus" not in call and "--gres" not in call, call
    # SLURM's own record: what each job asked for, and that all of them completed.
    run_id = re.search(r"SLURM run ID: (\S+)", log).group(1)
    jobs = _slurm_jobs(run_id)
    assert len(jobs) == sum(map(len, calls.values()))
    for job in jobs:
        assert job["JobState"] == "COMPLETED", job
        is_register = job["Comment"].startswith(f"rule_{REGISTER_RULE}")
        assert (job.get("TresPerJob") == "gres:gpu:1") == is_register, job
    return calls


@pytest.mark.slurm
@pytest.mark.slow
def test_profile_gpu_request_reaches_slurm(cluster, tmp_path):
    """A two-rule throwaway workflow: the profile alone gives `register` `--gpus=1`, SLURM allocates the
    fake GPU to it (CUDA_VISIBLE_DEVICES set) and to no other job."""
    (tmp_path / "Snakefile").write_text(f"""
rule all:
    input: "out/registered.txt"
    localrule: True

rule prepare:
    output: "out/prepared.txt"
    shell: "echo ${{{{CUDA_VISIBLE_DEVICES:-none}}}} > {{output}}"

rule {REGISTER_RULE}:
    input: "out/prepared.txt"
    output: "out/registered.txt"
    shell: "echo ${{{{CUDA_VISIBLE_DEVICES:-none}}}} > {{output}}"
""")
    profile = _test_profile(tmp_path / "profile")
    log = _run_snakemake(["--workflow-profile", str(profile), "all"], tmp_path, cluster)
    calls = _assert_gpu_on_registration_only(log)
    assert set(calls) == {"prepare", REGISTER_RULE}
    assert (tmp_path / "out" / "prepared.txt").read_text().strip() == "none"
    # SLURM exports the index of the fake GPU it allocated ("0" or "1").
    assert (tmp_path / "out" / "registered.txt").read_text().strip() in {"0", "1"}
    print("\n".join(c for cs in calls.values() for c in cs))


@pytest.mark.slurm
@pytest.mark.slow
@pytest.mark.workflow
def test_tiny_workflow_through_slurm(cluster, tiny_run, tmp_path):
    """The tiny phantom benchmark's registrations and evaluations, each submitted with sbatch, up to its tables:
    the tables come out, and only the registrations asked SLURM for a GPU.

    The phantom, its conversion and the masks come done from conftest's tiny_run (files and Snakemake's
    records), as a user's data would be: every job through SLURM waits for a status check (10 s and more on
    this cluster), and three more stages of them would prove nothing the two here do not."""
    from reliability_helpers import copy_tree

    profile = _test_profile(tmp_path / "profile")
    workdir = tmp_path / "run"
    workdir.mkdir()
    for part in ("results/phantom/source", "results/phantom/data", ".snakemake/metadata"):
        copy_tree(tiny_run["workdir"] / part, workdir / part)
    # No CUDA on the test machine: registrations run on the CPU (use_gpu false -> device cpu) while the
    # profile's `register: gpu: 1` still makes SLURM allocate a fake GPU to them. One case (both
    # configurations) keeps the wall time down on a 2-core machine; the DAG's shape is the same.
    tiny = yaml.safe_load(TINY_CONFIG.read_text())
    cases = tiny["cases"][:1]
    configurations = [name for name, settings in tiny["configurations"].items() if settings is not False]
    overrides = tmp_path / "slurm_test.yaml"
    # The tiny config's sweeps switched off: its own configurations are the DAG this test is about.
    sweeps_off = {name: False for name in tiny.get("sweeps", {})}
    overrides.write_text(yaml.safe_dump({"use_gpu": False, "cases": cases, "sweeps": sweeps_off}))
    log = _run_snakemake(
        [
            "--snakefile",
            str(SNAKEFILE),
            "--workflow-profile",
            str(profile),
            "--configfile",
            str(TINY_CONFIG),
            str(overrides),
            # The copied data was made for both tiny cases; this run has one, which changes the phantom rule's
            # params (its case list). Time stamps alone say the data is up to date, as it is.
            "--rerun-triggers",
            "mtime",
            "--",
            # The tables (every registration and evaluation behind them), not `all`: the dataset figures and
            # curves are local rules like the tables (~15 s more on the submitting node, nothing about SLURM).
            f"results/{tiny['dataset']}/tables/tre.csv",
        ],
        workdir,
        cluster,
    )
    calls = _assert_gpu_on_registration_only(log)
    print("\n".join(c for cs in calls.values() for c in cs))

    assert set(calls) == {REGISTER_RULE, "evaluate"}, sorted(calls)  # the data jobs were up to date
    assert len(calls[REGISTER_RULE]) == len(cases) * len(configurations)
    tre = pd.read_csv(workdir / "results" / tiny["dataset"] / "tables" / "tre.csv")
    expected = {(case, conf) for case in cases for conf in ["initial", *configurations]}
    assert set(zip(tre["case"], tre["configuration"], strict=True)) == expected
    assert len(tre) == len(expected)
    assert tre["tre_mean_mm"].notna().all()
    registered = tre[tre["configuration"] != "initial"]
    assert (registered["device"] == "cpu").all()
    for name in ("tre.md", "tre.tex"):
        assert (workdir / "results" / tiny["dataset"] / "tables" / name).stat().st_size > 0
