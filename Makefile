# The README's commands. Each sets up its own virtual environment in .venv.
.PHONY: demo test check bench clean

demo:
	scripts/setup-venv.sh dev
	.venv/bin/storesync demo

test:
	scripts/test.sh

check:
	scripts/check.sh

bench:
	scripts/setup-venv.sh dev,bench
	scripts/start-postgres.sh
	.venv/bin/python -m benchmarks.queue
	.venv/bin/python -m benchmarks.sync
	.venv/bin/python -m benchmarks.api

clean:
	rm -rf .venv .pytest_cache .mypy_cache .ruff_cache .storesync
