# Spanlab developer tasks. Everything runs in .venv (created on first use).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: test test-fast lint format bench ui ui-deps ui-check install serve clean phoenix

UI_DEPS := ui/node_modules/.package-lock.json

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'

# The whole suite: unit, in-process, end-to-end and browser tests (the UI's Vitest
# suite runs from pytest too).
test: install ui-deps phoenix
	$(BIN)/python -m pytest -q

# Arize Phoenix, the OTLP receiver tests/e2e/test_otlp_phoenix.py exports to: in a
# virtualenv of its own (~850 MB of dependencies, some pinned apart from ours), not in
# the test extra.
PHOENIX_VENV ?= .venv-phoenix

$(PHOENIX_VENV)/bin/phoenix:
	$(PYTHON) -m venv $(PHOENIX_VENV)
	$(PHOENIX_VENV)/bin/pip install -q arize-phoenix

phoenix: $(PHOENIX_VENV)/bin/phoenix

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

# The web UI's Node dependencies (for its tests and builds; not needed to serve it).
$(UI_DEPS): ui/package.json ui/package-lock.json
	cd ui && npm ci --no-audit --no-fund

ui-deps:
	@if command -v npm >/dev/null 2>&1; then $(MAKE) --no-print-directory $(UI_DEPS); \
	else echo "npm not found: the UI's own tests will be skipped"; fi

# Rebuild the web UI into gateway/ui_dist, which the package ships: commit the result.
ui: ui-deps
	cd ui && npm run build

# Fail when the committed build is not what the source builds to.
ui-check: ui
	git diff --exit-code --stat -- gateway/ui_dist
	@test -z "$$(git status --porcelain -- gateway/ui_dist)" || \
		{ git status --short -- gateway/ui_dist; echo "gateway/ui_dist is stale: commit it"; exit 1; }

# nginx (Debian's nginx-light) is the benchmark's reference proxy, and PostgreSQL (Debian's
# postgresql) the store of its section 9: installed where we can (root with apt-get);
# without nginx the bench leaves its column empty, without PostgreSQL it skips section 9,
# and says so.
bench: install
	$(BIN)/pip install -q -e '.[test,bench]'
	@command -v nginx >/dev/null || test -x /usr/sbin/nginx || \
		{ test "$$(id -u)" = 0 && command -v apt-get >/dev/null && \
		  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null; } || \
		echo "nginx is not installed: the benchmark runs without its column"
	@command -v pg_ctl >/dev/null || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || \
		{ test "$$(id -u)" = 0 && command -v apt-get >/dev/null && \
		  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; } || \
		echo "PostgreSQL is not installed: the benchmark skips section 9"
	$(BIN)/python -m bench

serve: install
	$(BIN)/spanlab serve

clean:
	rm -rf $(VENV) dist build .pytest_cache .mypy_cache .ruff_cache
