# Every target creates .venv and installs the project from pyproject.toml when needed,
# so a fresh clone needs nothing but Python 3.10+.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test quick lint typecheck unit demo bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check opentrain_async tests benchmarks examples
	$(BIN)/ruff format --check opentrain_async tests benchmarks examples

typecheck: $(STAMP)
	$(BIN)/mypy --strict opentrain_async

# Two pytest-xdist workers (coverage measures them: subprocesses are patched) and
# the tests marked `process` too (real signals, kill -9, a terminal).
PYTEST_WORKERS ?= 2

unit: $(STAMP)
	$(BIN)/coverage erase
	$(BIN)/coverage run -m pytest -q -n $(PYTEST_WORKERS)
	$(BIN)/coverage combine -q 2>/dev/null || true
	$(BIN)/coverage report

test: lint typecheck unit

# The edit-test loop: lint and every test that starts no process, no coverage.
quick: $(STAMP)
	$(BIN)/ruff check opentrain_async tests
	$(BIN)/pytest -q -x -n $(PYTEST_WORKERS) -m "not process" -p no:cacheprovider

demo: $(STAMP)
	$(BIN)/python -m opentrain_async demo

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .coverage .coverage.* .mypy_cache .ruff_cache .pytest_cache
