#!/usr/bin/env bash
# Lint, format check, strict type check and the import contracts (pyproject.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
scripts/setup-venv.sh dev,bench  # the benchmarks are type-checked with their rivals (pgqueuer, procrastinate)
"$VENV/bin/ruff" check storesync tests benchmarks
"$VENV/bin/ruff" format --check storesync tests benchmarks
"$VENV/bin/mypy"
"$VENV/bin/lint-imports"
