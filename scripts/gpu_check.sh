#!/usr/bin/env bash
# The one device check for a session that is lent a GPU (about 5 minutes of device time):
# CUDA correctness (the tests marked gpu), the Monitor's cost on CUDA, and gandiag run on CUDA.
#
#   bash scripts/gpu_check.sh            # on the GPU machine, from the repository root
#
# It uses that machine's own python3 (PyTorch with CUDA; nothing is installed) with the
# repository on PYTHONPATH, and writes at most 8 small files to $OUT (a temp folder when
# unset). Each step has its own time limit and its status goes to $OUT/summary.txt, so one
# failing step does not hide the others.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${OUT:-$(mktemp -d)}
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 MPLBACKEND=Agg
PY=${PYTHON:-python3}
summary=$OUT/summary.txt
: >"$summary"

step() {  # step NAME LIMIT_S LOG COMMAND...
  local name=$1 limit=$2 log=$3
  shift 3
  local t0=$SECONDS
  timeout "$limit" "$@" >"$OUT/$log" 2>&1
  local rc=$?
  echo "$name: rc=$rc in $((SECONDS - t0)) s (log: $log)" | tee -a "$summary"
}

step device 60 device.txt "$PY" -c "
import torch
print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())
assert torch.cuda.is_available(), 'no CUDA device'
print(torch.cuda.get_device_name(0))"

# No host-device sync per step, autocast + GradScaler unscaling, CPU and CUDA agreeing.
step gpu_tests 240 gpu_tests.txt "$PY" -m pytest -q -m gpu -p no:cacheprovider tests

# Wall time after a synchronize; the default loop and a smaller one.
step bench_w256 200 bench_cuda_w256.json "$PY" benchmarks/monitor_overhead.py --device cuda --steps 2000 --json
step bench_w128 150 bench_cuda_w128.json "$PY" benchmarks/monitor_overhead.py --device cuda --steps 2000 --width 128 --json

# The main job's path on CUDA, end to end (runs kept off $OUT: only the summary comes back).
runs=$(mktemp -d)
step run_cuda 240 run_cuda.txt "$PY" -m gandiag.cli run --device cuda --loss nonsaturating,minimax \
  --data ring8,digits --steps 500 --out "$runs" --quiet
step report_cuda 120 report_cuda.txt "$PY" -m gandiag.cli report "$runs" --out "$runs/report.html"

cat "$summary"
