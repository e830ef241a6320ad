# One entry point for people and CI. Every target installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
THIRD_PARTY := build/third_party/protos
PROTOS := $(shell find protos -name '*.proto')

.PHONY: serve test soak check lint typecheck generate generated-check protos-deps buf-lint buf-breaking bench bench-history bench-instructions h2load patroni clean

$(BIN)/billing-service: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

## serve: start the service on the embedded SQLite default
serve: $(BIN)/billing-service
	$(BIN)/billing-service serve

## test: lint, type-check, check the stubs, then run the whole test suite
test: $(BIN)/billing-service patroni generated-check buf-lint buf-breaking lint typecheck
	$(BIN)/pytest

## soak: the fault suite for minutes on both databases (SOAK_SECONDS per scenario), with
## thousands of fuzzed messages; prints its figures. Not part of `make test`.
SOAK_SECONDS ?= 20
soak: $(BIN)/billing-service patroni
	BILLING_SOAK=1 BILLING_SOAK_SECONDS=$(SOAK_SECONDS) $(BIN)/pytest tests/faults -n 0 -s -q -o timeout=1800

lint: $(BIN)/billing-service
	$(BIN)/ruff check service tests bench scripts
	$(BIN)/ruff format --check service tests bench scripts

typecheck: $(BIN)/billing-service
	$(BIN)/mypy

## protos-deps: copy googleapis' protos (google/api, google/rpc) from the installed package
protos-deps: $(BIN)/billing-service
	$(PY) scripts/copy_third_party_protos.py $(THIRD_PARTY)

buf-lint: protos-deps
	$(BIN)/buf lint
	$(BIN)/buf build -o /dev/null

## buf-breaking: the protos stay wire- and source-compatible with the released API
## (API_BASELINE, a commit; skipped with a note where the clone lacks it)
API_BASELINE ?= e2ea3af
buf-breaking: protos-deps
	@if git cat-file -e $(API_BASELINE)^{commit} 2>/dev/null; then \
		rm -rf build/api-baseline && mkdir -p build/api-baseline/build && \
		git archive $(API_BASELINE) protos buf.yaml | tar -x -C build/api-baseline && \
		cp -r build/third_party build/api-baseline/build/ && \
		$(BIN)/buf breaking --against build/api-baseline; \
	else echo "buf-breaking: commit $(API_BASELINE) is not in this clone; skipped"; fi

## generate: regenerate the committed stubs in generated/ from protos/
generate: protos-deps
	$(PY) scripts/generate.py generated

## generated-check: fail when generated/ is not what protos/ generates
generated-check: protos-deps
	$(PY) scripts/generate.py --check generated

## bench: the hot-path benchmark matrix into bench/RESULTS.md (not part of the test suite;
## BENCH_ARGS=--quick for a smoke run); see bench/README.md
bench: $(BIN)/billing-service h2load
	$(PY) bench/run.py $(BENCH_ARGS)

## bench-history: throughput and memory as stored usage events and tenants grow, then the
## billing reads' latency with a million events in the month (bench/summaries.py)
bench-history: $(BIN)/billing-service h2load
	$(PY) bench/history.py $(BENCH_ARGS)
	$(PY) bench/summaries.py

## bench-instructions: instructions per call under callgrind, for comparing revisions on a
## noisy machine; see bench/README.md
bench-instructions: $(BIN)/billing-service h2load
	$(PY) bench/instructions.py $(BENCH_ARGS)

# The benchmarks' load generator, from Debian's nghttp2-client.
h2load:
	@command -v h2load >/dev/null || (apt-get update && apt-get install -y nghttp2-client)

# The failover test's cluster (tests/faults/test_failover.py): etcd and Patroni from
# Debian, on the PostgreSQL 15 binaries. Installed only when missing; apt-get retries
# while another install holds dpkg's lock.
PATRONI_PACKAGES := patroni python3-etcd etcd-server postgresql-15
patroni:
	@if ! command -v patroni >/dev/null || ! command -v etcd >/dev/null || \
		! test -x /usr/lib/postgresql/15/bin/postgres; then \
		for try in 1 2 3 4 5 6 7 8 9 10; do \
			apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y \
				--no-install-recommends $(PATRONI_PACKAGES) && break; \
			echo "apt-get failed (dpkg's lock held?); retrying in 10 s"; sleep 10; \
		done; \
		command -v patroni >/dev/null && command -v etcd >/dev/null; \
	fi

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache
