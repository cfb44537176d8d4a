# Two commands for a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# `make demo PORT=8001` serves elsewhere; `make demo FRESH=1` simulates a new world.
PORT ?= 8000
FRESH ?=

.PHONY: demo test lint typecheck bench clean browser lock

# The web app's tests drive Debian's Chromium through Playwright (never a browser build
# Playwright would download). Installed here when missing: as root, or through sudo.
CHROMIUM := /usr/bin/chromium

# Installs come from lock files of exact versions with their hashes (requirements/*.txt,
# refreshed by `make lock`), through uv (itself hash-pinned), which installs them several
# times faster than pip. `make demo` installs what running needs; `make test` adds the
# test tools and PostgreSQL's driver.
UV := $(BIN)/uv
RUN_LOCK := requirements/run.txt
DEV_LOCK := requirements/dev.txt
LOCKED := --universal --python-version 3.11 --generate-hashes --quiet
RUN_STAMP := $(VENV)/.installed-run

$(UV): requirements/uv.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r requirements/uv.txt
	touch $@

$(RUN_STAMP): $(RUN_LOCK) pyproject.toml $(UV)
	$(UV) pip install --python $(BIN)/python --quiet --require-hashes -r $(RUN_LOCK)
	$(UV) pip install --python $(BIN)/python --quiet --no-deps -e .
	touch $@

$(STAMP): $(DEV_LOCK) pyproject.toml $(UV)
	$(UV) pip install --python $(BIN)/python --quiet --require-hashes -r $(DEV_LOCK)
	$(UV) pip install --python $(BIN)/python --quiet --no-deps -e .
	touch $@ $(RUN_STAMP)

# Refresh the locks after changing pyproject.toml's dependencies or requirements/uv.in
# (the run lock keeps the versions of the dev lock, so both commands run the same code).
lock: $(UV)
	$(UV) pip compile pyproject.toml --extra dev --extra postgres $(LOCKED) -o $(DEV_LOCK)
	$(UV) pip compile pyproject.toml -c $(DEV_LOCK) $(LOCKED) -o $(RUN_LOCK)
	$(UV) pip compile requirements/uv.in $(LOCKED) -o requirements/uv.txt

demo: $(RUN_STAMP)
	$(BIN)/banking-analytics demo --port $(PORT) $(if $(FRESH),--fresh)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

browser:
	@if [ -x $(CHROMIUM) ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then sudo=""; \
	elif sudo -n true 2>/dev/null; then sudo="sudo -n"; \
	else echo "browser: $(CHROMIUM) is missing and cannot be installed (not root, no sudo):" \
		"the web app's browser tests will skip"; exit 0; fi; \
	echo "browser: installing Debian's chromium"; \
	$$sudo apt-get update -qq && \
	DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends \
		chromium fonts-dejavu-core >/dev/null || \
	echo "browser: installing chromium failed: the web app's browser tests will skip"

# Two workers, a test file each at a time (the API fuzzing's two engines apart: the groups
# are set in tests/conftest.py): most of a test's time is spent waiting (servers,
# PostgreSQL, the browser), so two files side by side finish sooner even on two cores.
test: lint typecheck browser
	$(BIN)/pytest --numprocesses 2 --dist loadgroup

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache demo-data
