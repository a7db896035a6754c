#!/usr/bin/env bash
# Install evolve into the current Python. Keeps an existing torch (CPU or CUDA); where there is none,
# installs the CPU build first, so the range in pyproject.toml doesn't pull several GB of CUDA wheels.
# Usage: bash experiments/install.sh [EXTRAS]     e.g. "test"
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
"$PY" -c "import torch" 2>/dev/null || "$PY" -m pip install -q torch==2.13.0
"$PY" -m pip install -q -e ".${1:+[$1]}"
# bubblewrap sandboxes training children (Debian/Ubuntu); without it evolve warns and runs them unisolated.
if ! command -v bwrap >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo -n"; fi
  { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq bubblewrap >/dev/null; } \
    || echo "install.sh: could not install bubblewrap; children will run without the sandbox" >&2
fi
