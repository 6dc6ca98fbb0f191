#!/usr/bin/env bash
# Every GPU benchmark in one short run (under 8 minutes on one GPU), for a machine with an
# accelerator: training throughput per precision option and the pose stage, on `cuda`.
# Writes each benchmark's output to ${OUT:-benchmarks-gpu}/ and prints it.
#   bash tests/benchmarks/run_gpu_benchmarks.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-benchmarks-gpu}
PY=${PY:-.venv/bin/python}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
run() {  # name, time limit (s), command...
  local name=$1 limit=$2; shift 2
  echo "== $name"
  timeout -s INT "$limit" "$@" 2>&1 | tee "$OUT/$name.txt"
}
run train 240 "$PY" tests/benchmarks/bench_train.py --device cuda --steps 20 --batch 32
run pose 180 "$PY" tests/benchmarks/bench_pose.py --device cuda --frames 300 --batch 16
