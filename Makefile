# Spanlab developer tasks. Everything runs in .venv (created on first use).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: test test-fast lint format bench ui install serve clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'

# The whole suite: unit, in-process and end-to-end tests.
test: install
	$(BIN)/python -m pytest -q

# In-process tests only (no spawned servers, no browser).
test-fast: install
	$(BIN)/python -m pytest -q -m "not e2e and not browser"

lint: install
	$(BIN)/ruff check gateway tests
	$(BIN)/ruff format --check gateway tests
	$(BIN)/mypy gateway

format: install
	$(BIN)/ruff format gateway tests
	$(BIN)/ruff check --fix gateway tests

bench: install
	$(BIN)/python -m bench

serve: install
	$(BIN)/spanlab serve

clean:
	rm -rf $(VENV) dist build .pytest_cache .mypy_cache .ruff_cache
