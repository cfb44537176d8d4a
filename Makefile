# Two commands for a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# `make demo PORT=8001` serves elsewhere; `make demo FRESH=1` simulates a new world.
PORT ?= 8000
FRESH ?=

.PHONY: demo test lint typecheck bench clean browser

# The web app's tests drive Debian's Chromium through Playwright (never a browser build
# Playwright would download). Installed here when missing: as root, or through sudo.
CHROMIUM := /usr/bin/chromium

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,postgres]'
	touch $(STAMP)

demo: $(STAMP)
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

test: lint typecheck browser
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache demo-data
