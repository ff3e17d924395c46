"""`rnr bench` defaults, the evaluation benchmark, and the CUDA memory accounting forced on the CPU."""

from __future__ import annotations

import json

import pytest
import torch

from rnr import layout, runtime
from rnr.cli import main as rnr_main
from rnr.commands import bench as bench_command
from rnr.methods import bench


@pytest.fixture
def fake_cuda(monkeypatch):
    """torch.cuda's memory accounting answered by fakes, so that the CUDA branches run with a
    torch.device('cuda') object on a machine without CUDA. Returns the list of calls."""
    calls: list[tuple[str, object]] = []

    def record(name, value=None):
        return lambda device=None: calls.append((name, device)) or value

    monkeypatch.setattr(torch.cuda, "synchronize", record("synchronize"))
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", record("reset"))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", record("max", 3 * 2**20))
    return calls


def test_cuda_peak_memory_accounting_forced_on_cpu(fake_cuda):
    device = torch.device("cuda")
    bench._reset_peak(device)
    assert bench._peak_mb(device) == 3.0
    runtime.reset_peak_memory(device)
    assert runtime.peak_memory_mb(device) == 3.0
    assert bench._timed(device, lambda: None) >= 0
    names = [name for name, _ in fake_cuda]
    assert names[:3] == ["synchronize", "reset", "max"] and names.count("synchronize") == 3
    assert names.count("reset") == 2 and names.count("max") == 2
    assert all(d == device for _, d in fake_cuda)


def test_cpu_peak_memory_is_the_resident_set():
    device = torch.device("cpu")
    bench._reset_peak(device)
    assert bench._peak_mb(device) > 10 and runtime.peak_memory_mb(device) > 10


def test_evaluation_benchmark_record():
    lines: list[str] = []
    record = bench.run_evaluation_benchmark("cpu", n_points=3000, repeats=2, old_points=300, width=16, say=lines.append)
    assert record["n_points"] == 3000 and record["flop_per_point"] == 5 * 8 * 16 * 22
    assert len(record["timings"]["pass_s"]) == 2 and record["pass_s"] > 0
    assert record["ratio_to_limit"] == pytest.approx(record["pass_s"] / record["limit_s"])
    assert record["limit_s"] == min(record["limit_chain_s"], record["limit_big_s"])
    assert record["speedup_vs_old"] > 0
    assert any("ratio to the limit" in line for line in lines)


def test_bench_evaluate_command(tmp_path, capsys):
    out = tmp_path / "eval.json"
    argv = ["bench", "--evaluate", "--points", "2000", "--set", "width=16", "--device", "cpu", "--out", str(out)]
    assert rnr_main(argv) == 0
    printed = capsys.readouterr().out
    assert "points/s" in printed and "ratio to the limit" in printed
    assert json.loads(out.read_text())["n_points"] == 2000


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], (bench_command.BENCH_ITERATIONS, bench_command.BENCH_REFERENCE_ITERATIONS)),
        (["--method-defaults"], (2500, None)),
        (["--iterations", "7"], (7, None)),
        (["--iterations", "7", "--reference-iterations", "3"], (7, 3)),
        (["--reference-iterations", "3"], (bench_command.BENCH_ITERATIONS, 3)),
    ],
)
def test_bench_iteration_defaults(converted_case, monkeypatch, argv, expected):
    seen = {}

    def fake_run_benchmark(case, mask, settings, **kwargs):
        seen["iterations"] = (settings.params.iterations, kwargs["reference_iterations"])
        return {"equality": {"passed": True}}

    monkeypatch.setattr(bench, "run_benchmark", fake_run_benchmark)
    mask = converted_case / layout.MASK_PROVIDED
    assert rnr_main(["bench", "--case-dir", str(converted_case), "--mask", str(mask), *argv]) == 0
    assert seen["iterations"] == expected
