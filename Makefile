# `make run` and `make test` set up everything they need, then run.
# Each set-up step prints what it does; steps already done are skipped.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck pytest setup clean

run: setup
	@echo "==> Serving at http://$${BACKEND_HOST:-127.0.0.1}:$${BACKEND_PORT:-8080} (Ctrl+C stops)"
	@$(BIN)/chatbot serve

test: setup lint typecheck pytest

setup: $(STAMP)

$(BIN)/python:
	@echo "==> [setup 1/2] Creating the virtual environment in $(VENV)"
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required; set PYTHON=...")'
	@$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	@echo "==> [setup 2/2] Installing chatbot and its dependencies into $(VENV)"
	@$(BIN)/python -m pip install --disable-pip-version-check -q --upgrade pip
	@$(BIN)/python -m pip install --disable-pip-version-check -q -e '.[dev]'
	@$(BIN)/python -c 'import chatbot.app' || { echo "install failed"; exit 1; }
	@touch $(STAMP)

lint: setup
	@echo "==> ruff (lint, format)"
	@$(BIN)/ruff check src tests
	@$(BIN)/ruff format --check src tests

typecheck: setup
	@echo "==> mypy --strict src"
	@$(BIN)/mypy

pytest: setup
	@echo "==> pytest"
	@$(BIN)/pytest

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
