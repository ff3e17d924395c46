"""Shared fixtures: a tiny phantom dataset and one converted case, built once per test session.

* ``phantom_dataset``: phantom cases 1 and 2 at scale 0.5 (68x55x17 and 59x48x18 voxels of ~4.3-5.1 mm
  in-plane and 11 mm slices, 300 landmarks each, Masks/ included), in the DIR-Lab layout; the folder path.
* ``converted_case``: case 1 of it converted with ``rnr.data.dirlab_reader.convert_case``; the case folder path
  (open it with ``rnr.data.case.load_case``). Treat both as read-only: copy them (shutil.copytree) to modify.
* ``case`` / ``mask``: that converted case loaded (``ConvertedCase``) and its provided T00 mask (bool array),
  per test module; a module may define its own ``case`` instead.
* ``phantom_case8``: phantom case 8 (the largest motion) at scale 0.5, converted; for the baselines' fits.
* ``one_thread``: torch on one thread for the test (fits of tiny cases: no OpenMP hand-offs on two shared
  cores).
* ``tiny_run``: the suite's one complete real workflow run (tests/workflow_configs/tiny.yaml: phantom cases 1
  and 2 at scale 0.5, two RNR configurations), killed after its first registration and resumed; every test
  that reads a finished run's outputs shares it (test_workflow.py), and test_reliability.py starts its
  workflow tests from a copy of its converted data, as does the SLURM test. Treat it as read-only: copy it to
  run more.

The suite runs on two workers (pytest-xdist, ``-n 2 --dist loadfile`` in pyproject.toml): a file's tests stay on
one worker, so module fixtures are built once per file; session fixtures once per worker, except ``tiny_run``,
made once for both (a file lock; see its docstring).
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

PHANTOM_CASES = (1, 2)
PHANTOM_SCALE = 0.5
TINY = Path(__file__).resolve().parent / "workflow_configs" / "tiny.yaml"


@pytest.fixture(scope="session")
def phantom_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rnr.data.phantom import write_dataset

    return write_dataset(
        tmp_path_factory.mktemp("phantom") / "source", cases=PHANTOM_CASES, seed=0, scale=PHANTOM_SCALE
    )


@pytest.fixture(scope="session")
def converted_case(phantom_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rnr.data.dirlab_reader import convert_case

    return convert_case(phantom_dataset, 1, tmp_path_factory.mktemp("converted") / "case1")


@pytest.fixture(scope="module")
def case(converted_case):
    from rnr.data.case import load_case

    return load_case(converted_case)


@pytest.fixture(scope="module")
def mask(case):
    return case.load_mask(case.provided_mask_path)


@pytest.fixture
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def phantom_case8(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rnr.data.dirlab_reader import convert_case
    from rnr.data.phantom import write_dataset

    root = tmp_path_factory.mktemp("phantom_case8")
    write_dataset(root / "source", cases=[8], seed=0, scale=PHANTOM_SCALE)
    return convert_case(root / "source", 8, root / "case8")


def finished_registrations(workdir: Path) -> dict[Path, float]:
    """Registrations Snakemake has finished (their benchmark record exists, written when the job ends):
    checkpoint -> its modification time (ns)."""
    done = {}
    results = workdir / "results" / "phantom"
    for bench in (results / "benchmarks" / "register").glob("*/case*/seed*.tsv"):
        checkpoint = results / "runs" / bench.parent.parent.name / bench.parent.name / bench.stem / "checkpoint.pt"
        if checkpoint.is_file():
            done[checkpoint] = checkpoint.stat().st_mtime_ns
    return done


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The tiny config run in a fresh directory, killed after its first registration and resumed:
    ``{"workdir", "finished_before_kill" (checkpoint -> mtime in ns), "resume_log"}``.

    Made once per test session even on several xdist workers: the first worker to ask makes it under a file
    lock in the workers' shared temporary folder and records the result there; the others wait on the lock and
    read the record (or the failure it recorded)."""
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        return _make_tiny_run(tmp_path_factory.mktemp("tiny_workflow"))
    shared = tmp_path_factory.getbasetemp().parent  # one folder per run, above each worker's own
    record, failure = shared / "tiny_run.json", shared / "tiny_run.failed"
    with open(shared / "tiny_run.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if failure.exists():
            pytest.fail(f"tiny_run failed on another worker:\n{failure.read_text()}")
        if not record.exists():
            try:
                run = _make_tiny_run(shared / "tiny_workflow")
            except BaseException as error:
                failure.write_text(f"{type(error).__name__}: {error}")
                raise
            finished = {str(k): v for k, v in run["finished_before_kill"].items()}
            record.write_text(json.dumps({**run, "workdir": str(run["workdir"]), "finished_before_kill": finished}))
    saved = json.loads(record.read_text())  # every worker, the maker too, reads the same record
    return {
        "workdir": Path(saved["workdir"]),
        "finished_before_kill": {Path(k): v for k, v in saved["finished_before_kill"].items()},
        "resume_log": saved["resume_log"],
    }


def _make_tiny_run(workdir: Path) -> dict:
    from reliability_helpers import child_env, snakemake, snakemake_command

    workdir.mkdir(parents=True, exist_ok=True)
    # Two jobs at a time (each on one thread): the test machine's two cores; the resume check counts jobs, so a
    # registration killed in flight alongside the finished one is simply redone.
    args = ("--configfile", str(TINY), "--cores", "2", "all")
    with open(workdir / "first.log", "w") as log:
        proc = subprocess.Popen(
            snakemake_command(workdir, *args),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=child_env(),
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 600
            while not finished_registrations(workdir):
                assert proc.poll() is None, (workdir / "first.log").read_text()
                assert time.monotonic() < deadline, "no registration finished within 10 min"
                time.sleep(0.5)
            time.sleep(2.0)  # let Snakemake record the job as finished and start the next one
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    finished = finished_registrations(workdir)
    # --cores on every call: the phantom rule's threads are workflow.cores, which Snakemake needs set to parse.
    unlock = snakemake(workdir, "--configfile", str(TINY), "--cores", "1", "--unlock")
    assert unlock.code == 0, unlock.text
    resumed = snakemake(workdir, *args, "--rerun-incomplete", timeout=900)
    assert resumed.code == 0, resumed.text
    return {"workdir": workdir, "finished_before_kill": finished, "resume_log": resumed.text}
