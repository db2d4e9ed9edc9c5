# Parlour developer entry points. `make run` and `make test` do all their own set-up.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint venv bench-quick docs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

## Run the server on embedded defaults: domain localhost, SQLite and a self-signed certificate in ./dev-state
run: $(STAMP)
	$(PY) -m appliance run --dev

## Run the whole test suite (lint first)
test: $(STAMP)
	$(VENV)/bin/ruff check appliance tests
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check appliance tests

docs: $(STAMP)
	$(PY) -m appliance.config.docs > docs/configuration.md

## Quick load figures for development (see benchmarks/README.md)
bench-quick: $(STAMP)
	$(PY) benchmarks/load.py

clean:
	rm -rf $(VENV) build dist .pytest_cache
