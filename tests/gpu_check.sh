#!/usr/bin/env bash
# The GPU path, checked on a machine with CUDA (issue 17, item 5). Run from the repository root with the
# project's environment active:   bash tests/gpu_check.sh [OUT_DIR]
# Prints, and writes under OUT_DIR (default gpu_check/): the GPU-marked tests, `rnr bench --device cuda`
# (fitting loop at the method defaults, iterations/s, ratio, peak GPU memory, first-iteration equality), the
# evaluation benchmark on CUDA (seconds, points/s, ratio to the matrix-rate limit, peak GPU memory), and one
# registration at the method defaults on a DIR-Lab-size phantom case with its evaluation (wall seconds).
set -euo pipefail
out=${1:-gpu_check}
mkdir -p "$out"
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device visible to torch')"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/nvidia_smi.csv"

echo "== pytest -m gpu"
python -m pytest -m gpu -q -rs tests/ 2>&1 | tee "$out/pytest_gpu.txt"

echo "== rnr bench --device cuda (method defaults: 2500 x 10,000)"
rnr bench --device cuda --method-defaults --repeats 3 --no-progress --out "$out/bench_fit.json" | tee "$out/bench_fit.txt"

echo "== rnr bench --evaluate --device cuda (1.6 M points, every step's det J)"
rnr bench --evaluate --device cuda --repeats 3 --old-points 100000 --out "$out/bench_evaluate.json" \
  | tee "$out/bench_evaluate.txt"

echo "== one registration at the method defaults on a DIR-Lab-size phantom case, and its evaluation"
work="$out/phantom"
# scale 2.0 (the phantom's largest): 273 x 220 x 65 voxels of 1.07 x 1.07 x 2.76 mm, near a DIR-Lab grid
rnr phantom "$work/source" --cases 1 --scale 2.0
rnr convert --dataset phantom --source "$work/source" --case 1 --out "$work/case1"
rnr segment --case-dir "$work/case1" --method provided
/usr/bin/time -f "register wall %e s, max RSS %M kB" \
  rnr register --case-dir "$work/case1" --out "$work/run" --set device=cuda --no-progress 2>&1 | tee "$out/register.txt"
/usr/bin/time -f "evaluate wall %e s, max RSS %M kB" \
  rnr evaluate --case-dir "$work/case1" --run-dir "$work/run" --device cuda 2>&1 | tee "$out/evaluate.txt"
echo "== done; figures in $out/"
