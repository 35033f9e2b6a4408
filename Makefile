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
	.venv/bin/python benchmarks/run_all.py

clean:
	rm -rf .venv .pytest_cache .mypy_cache .ruff_cache .storesync
