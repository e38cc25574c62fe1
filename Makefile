# On a fresh clone: `make demo` runs the whole system (Redis, gunicorn, a worker), `make test` the test suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo quickstart test faults bench check lint format clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(VENV)/.installed
	$(PY) examples/demo.py

quickstart: $(VENV)/.installed
	$(PY) examples/quickstart.py

bench: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) -m pip install --quiet --no-deps 'redis-purse>=2'  # the asyncio collections' peer; it pins redis<6, runs on ours
	$(PY) -m benchmarks.run

test: $(VENV)/.installed
	$(PY) -m pytest

faults: $(VENV)/.installed
	FAULT_TABLE=docs/faults.md $(PY) -m pytest -m faults -v

check: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(VENV)/.installed
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) build *.egg-info
