# The README's two commands are `make all` (the main job) and `make test` (the full test suite).
# Both create .venv if it is missing; the bootstrap pins the local CPU wheel of torch (constraints.txt).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python

.PHONY: all test export clean-check bench venv

all: export bench

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install -c constraints.txt -e '.[dev]'
	@touch $@

export: $(VENV)/.installed
	$(BIN)/nbdev-export

bench: $(VENV)/.installed
	$(PY) -m linear_contraction.bench all

# Fails if nbdev-export or nbdev-clean would change a file, then runs every notebook once through nbdev's test_nb.
test: $(VENV)/.installed
	$(PY) tools/check_clean.py
	$(PY) -m pytest tests
