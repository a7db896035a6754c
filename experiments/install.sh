#!/usr/bin/env bash
# Install evolve into a virtual environment, .venv in the checkout (made when missing), or into $PYTHON.
# A venv sidesteps system Pythons that refuse pip installs (PEP 668: Debian, Ubuntu). It is made with
# --system-site-packages, so an existing torch (CPU or CUDA) and whatever else the system has is kept;
# where there is no torch, the CPU build goes in first, so the range in pyproject.toml doesn't pull
# several GB of CUDA wheels.
# Usage: bash experiments/install.sh [EXTRAS]     e.g. "test"; then: . .venv/bin/activate
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "install.sh: $*" >&2; }
if [ -z "${PYTHON:-}" ]; then
  if [ ! -x .venv/bin/python ]; then
    BASE=${BASE_PYTHON:-python3}
    if ! "$BASE" -m venv --system-site-packages .venv 2>/dev/null; then
      rm -rf .venv  # Debian/Ubuntu split venv (ensurepip) into its own package
      VENV_PKG="python3-venv python$("$BASE" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')-venv"
      if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo -n"; fi
      { command -v apt-get >/dev/null && $SUDO apt-get update -qq && $SUDO apt-get install -y -qq $VENV_PKG >/dev/null \
        && "$BASE" -m venv --system-site-packages .venv; } \
        || { say "could not make .venv with $BASE -m venv; install $VENV_PKG (or set PYTHON=/path/to/python)"; exit 1; }
    fi
    say "made .venv (from $BASE, with its site-packages visible)"
  fi
  PYTHON=.venv/bin/python
fi
"$PYTHON" -c "import torch" 2>/dev/null || "$PYTHON" -m pip install -q torch==2.13.0
"$PYTHON" -m pip install -q -e ".${1:+[$1]}"
# bubblewrap sandboxes training children (Debian/Ubuntu); without it evolve warns and runs them unisolated.
if ! command -v bwrap >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo -n"; fi
  { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq bubblewrap >/dev/null; } \
    || say "could not install bubblewrap; children will run without the sandbox"
fi
say "evolve is installed for $PYTHON"
