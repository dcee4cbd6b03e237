#!/usr/bin/env bash
# Creates .venv (once) and installs gandiag into it. Sourced by main.sh and test.sh.
# torch is pinned to 2.13.0 here only: on these CPU machines that release lies on
# disk as a CPU build, where an unpinned torch would pull a CUDA build of several GB.
# The package itself asks for a range (setup.cfg).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.gandiag-installed
if [ ! -f "$stamp" ] || [ setup.cfg -nt "$stamp" ]; then
  if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    if [ "${GANDIAG_TORCH_SPEC:-}" != "" ]; then
      .venv/bin/pip install -q "$GANDIAG_TORCH_SPEC"
    elif command -v nvidia-smi >/dev/null 2>&1; then
      .venv/bin/pip install -q "torch>=2.1,<3"
    else
      .venv/bin/pip install -q torch==2.13.0
    fi
  fi
  .venv/bin/pip install -q -e ".[test,lightning]"
  touch "$stamp"
fi
