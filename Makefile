# Every target creates .venv and installs the project from pyproject.toml when needed,
# so a fresh clone needs nothing but Python 3.10+.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

DOCS_STAMP := $(VENV)/.installed-docs

# Some machines (this project's CI among them) set PYTHONDONTWRITEBYTECODE: then every
# process compiles the package and pytest rewrites every test module again, ~0.3 s per CLI
# process the tests start and ~3 s per pytest worker. __pycache__ is in .gitignore.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: test quick lint typecheck unit coverage demo bench docs pythons clean

# dev, docs and bench are PEP 735 dependency groups (never published): pip 25.1+ installs them.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade 'pip>=25.1'
	$(BIN)/python -m pip install --quiet -e . --group dev
	touch $(STAMP)

$(DOCS_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --group docs
	touch $(DOCS_STAMP)

lint: $(STAMP)
	$(BIN)/ruff check opentrain_async tests benchmarks examples
	$(BIN)/ruff format --check opentrain_async tests benchmarks examples

typecheck: $(STAMP)
	$(BIN)/mypy --strict opentrain_async

# Four pytest-xdist workers on two cores, the tests marked `process` (real signals, kill -9,
# a terminal) included: those mostly wait for their children, so workers beyond the cores
# fill the waits. Quiet 2-core machine, no coverage: -n 3 81.5 s, -n 4 71.3 s (119 CPU-s).
# Tests are handed out two at a time, the `process` ones first (tests/conftest.py), so the
# long ones start early and none ends the run alone. `make quick` (CPU-bound) keeps two.
PYTEST_WORKERS ?= 4
QUICK_WORKERS ?= 2
COVERAGE_WORKERS ?= 3
PYTEST_DIST ?= --dist load --maxschedchunk 2

unit: $(STAMP)
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) $(PYTEST_DIST)

# The suite again under coverage (branch, CLI subprocesses included; gate in pyproject.toml).
# Kept out of `make test`: tracing doubles the suite's CPU (119 -> 211 CPU-s, 117 s on
# three workers), and on two cores that is the edit-test loop's whole budget. CI runs it.
coverage: $(STAMP)
	$(BIN)/coverage erase
	$(BIN)/coverage run -m pytest -q -n $(COVERAGE_WORKERS) $(PYTEST_DIST)
	$(BIN)/coverage combine -q 2>/dev/null || true
	$(BIN)/coverage report

# Lint first (seconds, and the commonest failure); then mypy beside the tests, whose
# process-marked share mostly waits: a cold mypy (after an edit) costs no wall time.
# Each target's output is printed whole when it ends (--output-sync).
test: lint
	$(MAKE) --no-print-directory -j2 --output-sync=target typecheck unit

# The edit-test loop: lint and every test that starts no process of its own (the shared
# redis-server aside) and waits no second of real time (markers `process` and `slow`:
# `make test` runs them).
quick: $(STAMP)
	$(BIN)/ruff check opentrain_async tests
	$(BIN)/pytest -q -x -n $(QUICK_WORKERS) $(PYTEST_DIST) -m "not process and not slow" -p no:cacheprovider

demo: $(STAMP)
	$(BIN)/python -m opentrain_async demo

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet --group bench
	$(BIN)/python -m benchmarks

# The documentation site into site/; strict: any warning (a broken link, a missing
# anchor, a docstring mkdocstrings cannot read) fails the build.
docs: $(DOCS_STAMP)
	$(BIN)/mkdocs build --strict --site-dir site

# The suite on every supported Python, with pyenv's interpreters (see noxfile.py); a
# missing interpreter fails.
pythons: $(STAMP)
	$(BIN)/nox --error-on-missing-interpreters -s tests

clean:
	rm -rf $(VENV) site .nox .coverage .coverage.* .mypy_cache .ruff_cache .pytest_cache
