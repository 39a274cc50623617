#!/usr/bin/env bash
# The test command (README "Tests"): ruff, then pytest. pytest's exit code 5 ("no tests collected")
# is a failure here, never a silent pass.
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
ruff check segprune_core server tests benchmarks docker
set +e
python -m pytest -q -p no:cacheprovider "$@"
status=$?
set -e
if [ "$status" = 5 ]; then
  echo "pytest collected no tests: failing" >&2
  exit 1
fi
exit "$status"
