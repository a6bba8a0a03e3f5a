# Nimbus: `make up` runs the platform with a sample function; `make test` runs every test.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
PYTHON ?= python3

.PHONY: install docker images up down test lint unit bench clean

$(VENV)/.installed: pyproject.toml
	@echo "==> creating $(VENV) and installing Nimbus with its test tools"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install -q -e '.[test]'
	@touch $@

install: $(VENV)/.installed

docker:
	@bash scripts/ensure-docker.sh

images: install docker
	@$(BIN)/nimbus images build

up: images
	@bash scripts/up.sh

down:
	@bash scripts/down.sh

lint: install
	@echo "==> ruff and mypy"
	@$(BIN)/ruff check gateway invoker tests bench runtimes functions
	@$(BIN)/mypy

unit: install
	@$(BIN)/pytest -q tests/unit

test: images lint
	@bash scripts/test.sh

clean:
	rm -rf $(VENV) .nimbus .pytest_cache .mypy_cache .ruff_cache
