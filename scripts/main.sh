#!/usr/bin/env bash
# The main job: set up (once), train all eight loss variants on ring8 and digits
# with matched seeds, analyse them, and write one HTML report.
# Extra arguments go to `gandiag run` (e.g. --steps 500 for a quicker look).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup_env.sh
run_dirs=$(.venv/bin/gandiag run --loss all --data ring8,digits --out runs "$@")
sweep=$(dirname "$(echo "$run_dirs" | head -n 1)")
report="reports/$(basename "$sweep").html"
.venv/bin/gandiag report "$sweep" --out "$report"
echo
echo "Report written to: $(pwd)/$report"
