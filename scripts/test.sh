#!/usr/bin/env bash
# The whole test suite: sets up .venv, starts PostgreSQL if needed, runs pytest on SQLite and
# PostgreSQL. Extra arguments go to pytest (e.g. scripts/test.sh -k queue).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
scripts/setup-venv.sh dev
scripts/start-postgres.sh
exec "$VENV/bin/pytest" "$@"
