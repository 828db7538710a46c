# Every target bootstraps .venv itself, so a fresh clone needs nothing but python3.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CHROMIUM := /usr/bin/chromium

.PHONY: demo run test lint bench clean browser

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP) ## run the product on SQLite + simulator and post a demo broadcast
	$(BIN)/wabroadcast demo

run: $(STAMP) ## run the API server on WABROADCAST_DATABASE_URL
	$(BIN)/wabroadcast serve

browser: ## Debian's Chromium for the browser tests (they skip without it locally; CI requires it)
	@test -x $(CHROMIUM) || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } \
		|| echo "Chromium could not be installed: the browser tests will skip (under CI=true they fail)"

test: $(STAMP) browser ## the whole test suite (PostgreSQL and browser tests skip locally if missing; CI requires them)
	$(BIN)/python -m pytest

lint: $(STAMP) ## ruff and mypy --strict
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

bench: $(STAMP) ## performance figures, one "name: value unit" line each
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis wabroadcast.db*
