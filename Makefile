# The README's commands. Each sets up its own virtual environment in .venv.
.PHONY: demo test check bench screenshots clean

demo:
	scripts/setup-venv.sh dev
	.venv/bin/storesync demo

test:
	scripts/test.sh

check:
	scripts/check.sh

# All the benchmarks, then docs/benchmarks.md from their output (20 minutes on a quiet
# machine, up to 45 on a busy one);
# BENCH_ARGS="--quick" for a smoke run to a scratch directory, "--only scale" for some.
bench:
	scripts/setup-venv.sh dev,bench
	scripts/start-postgres.sh
	.venv/bin/python -m benchmarks.run_all $(BENCH_ARGS)

# The README's pictures: the demo's browser test, photographing into docs/screenshots.
screenshots:
	SCREENSHOTS_DIR=docs/screenshots scripts/test.sh tests/web/test_demo.py

clean:
	rm -rf .venv .pytest_cache .mypy_cache .ruff_cache .storesync
