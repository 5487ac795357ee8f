# Two commands for a newcomer: `make run` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: install run test lint fmt typecheck pytest demo clean browser wrk screenshots

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: install
	$(BIN)/stich db upgrade
	$(BIN)/stich seed --demo
	$(BIN)/stich serve

lint: install
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

# Headless Chromium for the Studio's browser test (Debian's packages); nothing if present.
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	elif command -v sudo >/dev/null 2>&1; then \
		sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	else echo "chromium is not installed and we are not root: the browser test will skip"; fi

# wrk (Debian's package) drives `stich bench --http`; without it Python threads do, and
# take CPU from the server being measured.
wrk:
	@if command -v wrk >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; \
	elif command -v sudo >/dev/null 2>&1; then \
		sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; \
	else echo "wrk is not installed and we are not root: stich bench --http will use Python threads"; fi

# The Studio screenshots docs/operations.md shows: the browser test writes them to
# docs/images/ (SQLite run; the test also runs on PostgreSQL under `make test`).
screenshots: install browser
	STICH_SCREENSHOTS_DIR=docs/images $(BIN)/pytest -q tests/test_studio_screenshots.py -k sqlite

typecheck: install
	$(BIN)/mypy --strict src

pytest: install browser
	$(BIN)/pytest -n 2 $(PYTEST_ARGS)

test: lint typecheck pytest

fmt: install
	$(BIN)/ruff check --fix src tests
	$(BIN)/ruff format src tests

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
