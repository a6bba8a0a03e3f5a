# Nimbus: `make up` runs the platform with a sample function; `make test` runs every test.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
PYTHON ?= python3

.PHONY: install docker postgres images node-client browser up down test lint unit bench clean
NIMBUS_TEST_POSTGRES_URL ?= postgresql://nimbus:nimbus@127.0.0.1:5432/nimbus_test

$(VENV)/.installed: pyproject.toml
	@echo "==> creating $(VENV) and installing Nimbus with its test tools"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install -q -e '.[test]'
	@touch $@

install: $(VENV)/.installed

docker:
	@bash scripts/ensure-docker.sh

postgres:
	@bash scripts/ensure-postgres.sh

images: install docker
	@$(BIN)/nimbus images build

up: images
	@bash scripts/up.sh

down:
	@bash scripts/down.sh

node-client:
	@echo "==> the OpenWhisk npm client the compatibility tests drive"
	@command -v npm >/dev/null || (apt-get update -q >/dev/null && apt-get install -y -q nodejs npm >/dev/null)
	@npm ci --silent --prefix tests/openwhisk_client

browser:
	@echo "==> Chromium and its driver for the console's browser tests"
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || (apt-get update -q >/dev/null && apt-get install -y -q chromium chromium-driver >/dev/null)

lint: install
	@echo "==> ruff and mypy"
	@$(BIN)/ruff check gateway invoker tests bench runtimes functions
	@$(BIN)/mypy

unit: install
	@$(BIN)/pytest -q tests/unit

test: images postgres node-client browser lint
	@NIMBUS_TEST_POSTGRES_URL=$(NIMBUS_TEST_POSTGRES_URL) bash scripts/test.sh

clean:
	rm -rf $(VENV) .nimbus .pytest_cache .mypy_cache .ruff_cache
