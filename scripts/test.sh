#!/usr/bin/env bash
# The whole test suite: sets up .venv, installs Chromium and starts PostgreSQL if needed, runs
# pytest on SQLite and PostgreSQL. Extra arguments go to pytest (e.g. scripts/test.sh -k queue).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
scripts/setup-venv.sh dev
scripts/install-chromium.sh  # Debian's Chromium, for the browser tests (tests/web)
scripts/start-postgres.sh
if [ $# -gt 0 ]; then
  exec "$VENV/bin/pytest" "$@"
fi
# Two processes share the tests (each test has its own database, ports and files); tests
# that restart PostgreSQL run alone afterwards.
"$VENV/bin/pytest" -n 2 -m "not serial"
"$VENV/bin/pytest" -m serial
