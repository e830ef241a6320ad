# One entry point for people and CI. Every target installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
THIRD_PARTY := build/third_party/protos
PROTOS := $(shell find protos -name '*.proto')

.PHONY: serve test check lint typecheck generate generated-check protos-deps buf-lint bench clean

$(BIN)/billing-service: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

## serve: start the service on the embedded SQLite default
serve: $(BIN)/billing-service
	$(BIN)/billing-service serve

## test: lint, type-check, check the stubs, then run the whole test suite
test: $(BIN)/billing-service generated-check buf-lint lint typecheck
	$(BIN)/pytest

lint: $(BIN)/billing-service
	$(BIN)/ruff check service tests bench
	$(BIN)/ruff format --check service tests bench

typecheck: $(BIN)/billing-service
	$(BIN)/mypy

## protos-deps: copy googleapis' protos (google/api, google/rpc) from the installed package
protos-deps: $(BIN)/billing-service
	$(PY) scripts/copy_third_party_protos.py $(THIRD_PARTY)

buf-lint: protos-deps
	$(BIN)/buf lint
	$(BIN)/buf build -o /dev/null

## generate: regenerate the committed stubs in generated/ from protos/
generate: protos-deps
	$(PY) scripts/generate.py generated

## generated-check: fail when generated/ is not what protos/ generates
generated-check: protos-deps
	$(PY) scripts/generate.py --check generated

## bench: run the benchmarks (not part of the test suite)
bench: $(BIN)/billing-service
	$(PY) bench/run.py

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache
