#!/usr/bin/env bash
# The test command: install evolve with its test extras (into .venv, or $PYTHON), then run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash experiments/install.sh test
# The HTML report is tested in a real headless Chromium: Debian's package, installed where missing.
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo -n"; fi
  { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null; } \
    || echo "run.sh: could not install chromium; the report's browser tests will fail" >&2
fi
export RAY_USAGE_STATS_ENABLED=0 RAY_AUTH_MODE=disabled
# Two test files at a time (pytest-xdist): a child trains on one thread, so one file's trainings leave the
# other core idle; --dist loadfile keeps each file, and the runs its module fixtures share, in one worker.
exec "${PYTHON:-.venv/bin/python}" -m pytest -q -p no:cacheprovider -n 2 --dist loadfile "$@"
