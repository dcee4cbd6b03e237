#!/usr/bin/env bash
# The test command (CI runs exactly this): set up (once), then the whole suite on CPU.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup_env.sh
exec .venv/bin/python -m pytest -q -n 2 "$@"
