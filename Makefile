# Every target bootstraps .venv itself, so a fresh clone needs nothing but python3.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CHROMIUM := /usr/bin/chromium
# pytest processes: every test has its own data and free ports, so they run side by side.
TEST_WORKERS ?= 2

GATEWAY := gateway
GATEWAY_DEPS := $(GATEWAY)/node_modules/.package-lock.json

.PHONY: demo run test lint bench clean browser gateway

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

$(GATEWAY_DEPS): $(GATEWAY)/package-lock.json
	cd $(GATEWAY) && npm ci --no-audit --no-fund

gateway: $(GATEWAY_DEPS) ## run the Baileys gateway (Node 20; reads WABROADCAST_GATEWAY_* from the environment)
	cd $(GATEWAY) && node src/server.js

test: $(STAMP) browser $(GATEWAY_DEPS) ## the whole test suite: the gateway's (node --test), then pytest (PostgreSQL and browser tests skip locally if missing; CI requires them)
	cd $(GATEWAY) && npm test
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal

lint: $(STAMP) ## ruff and mypy --strict
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

bench: $(STAMP) ## performance figures, one "name: value unit" line each
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis wabroadcast.db* $(GATEWAY)/node_modules
