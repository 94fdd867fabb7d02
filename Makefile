# The README's two commands are `make all` (the main job) and `make test` (the full test suite).
# Both set up what they need on a bare machine through tools/bootstrap.sh: .venv (the local CPU wheel of torch pinned
# by constraints.txt) and, for the browser test, Debian's chromium and chromium-driver.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python

.PHONY: all test export notebooks bench readme site docs venv browser

# The main job: export the package, execute every notebook in a Jupyter kernel and write the fresh outputs back, then
# write README.md and the offline site. Cells flagged `#| slow` (the full benchmark runs, the tutorials' long trainings)
# keep their stored outputs: `make bench` re-runs them (tens of minutes on 2 cores) and rebuilds README and site.
all: export notebooks readme site

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml constraints.txt tools/bootstrap.sh
	PYTHON=$(PYTHON) tools/bootstrap.sh venv

browser:
	tools/bootstrap.sh browser

export: $(VENV)/.installed
	$(BIN)/nbdev-export

# Every notebook in nbs/, in a real kernel (nbclient + ipykernel); a failure names the notebook and the cell.
notebooks: export
	$(PY) tools/run_nbs.py --skip-slow

# The notebooks with slow cells, every cell run (fresh benchmark tables and plots, each captioned with its machine and
# date); `python -m linear_contraction.bench all` runs the same benchmarks from the command line without the notebooks.
bench: export
	$(PY) tools/run_nbs.py --slow-only
	$(MAKE) readme site

# README.md from nbs/index.ipynb (nbdev processing + pandoc; nbdev-readme would need Quarto).
readme: $(VENV)/.installed
	$(PY) tools/readme.py

# The offline docs site in _docs/ (nbdev processing + pandoc, MathML, no network). Where Quarto is installed,
# `$(BIN)/nbdev-docs` builds the standard nbdev site from the same notebooks and nbs/_quarto.yml.
site: $(VENV)/.installed
	$(PY) tools/docsite.py
docs: site

# Fails if nbdev-export, nbdev-clean or the README generator would change a file, then runs every notebook once
# through nbdev's test_nb, checks the layout (tests/test_layout.py) and every page of the site in headless Chromium
# (tests/test_site.py).
test: $(VENV)/.installed browser
	$(PY) tools/check_clean.py
	$(PY) -m pytest tests
