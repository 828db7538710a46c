# Every target bootstraps .venv itself, so a fresh clone needs nothing but python3.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo run test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP) ## run the product on SQLite + simulator and post a demo broadcast
	$(BIN)/wabroadcast demo

run: $(STAMP) ## run the API server on WABROADCAST_DATABASE_URL
	$(BIN)/wabroadcast serve

test: $(STAMP) ## the whole test suite (PostgreSQL tests skip locally if it is down; CI requires it)
	$(BIN)/python -m pytest

lint: $(STAMP) ## ruff and mypy --strict
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

bench: $(STAMP) ## performance figures, one "name: value unit" line each
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis wabroadcast.db*
