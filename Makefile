# One command to run the demo, one to run the tests, one for the checks.
# Each creates and fills its own virtual environment in .venv.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test check venv clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/storesync demo

test: $(STAMP)
	./scripts/test.sh

check: $(STAMP)
	$(VENV)/bin/ruff check storesync tests benchmarks
	$(VENV)/bin/ruff format --check storesync tests benchmarks
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
