#!/usr/bin/env bash
# Create .venv and install storesync with the given extras, skipping the install when
# pyproject.toml has not changed since the last one.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
EXTRAS=${1:-dev}
stamp="$VENV/.installed-$EXTRAS"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet -e ".[$EXTRAS]"
  touch "$stamp"
fi
