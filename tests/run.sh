#!/usr/bin/env bash
# The test command: install evolve with its test extras on this machine, then run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash experiments/install.sh test
export RAY_USAGE_STATS_ENABLED=0 RAY_AUTH_MODE=disabled
exec "${PYTHON:-python3}" -m pytest -q -p no:cacheprovider "$@"
