# One entry point for people and CI. Every target installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
THIRD_PARTY := build/third_party/protos
PROTOS := $(shell find protos -name '*.proto')

CLIENT_BUILD := build/clients

.PHONY: clients serve test soak check lint typecheck generate generated-check protos-deps buf-lint buf-breaking bench bench-history bench-instructions h2load test-tools clean

$(BIN)/billing-service: pyproject.toml clients/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]' -e clients/python
	touch $@

## serve: start the service on the embedded SQLite default
serve: $(BIN)/billing-service
	$(BIN)/billing-service serve

## test: lint, type-check, check the stubs, then run the whole test suite
test: $(BIN)/billing-service test-tools generated-check buf-lint buf-breaking lint typecheck
	$(BIN)/pytest

## soak: the fault suite for minutes on both databases (SOAK_SECONDS per scenario), with
## thousands of fuzzed messages; prints its figures. Not part of `make test`.
SOAK_SECONDS ?= 20
soak: $(BIN)/billing-service test-tools
	BILLING_SOAK=1 BILLING_SOAK_SECONDS=$(SOAK_SECONDS) $(BIN)/pytest tests/faults -n 0 -s -q -o timeout=1800

lint: $(BIN)/billing-service
	$(BIN)/ruff check service tests bench scripts clients/python
	$(BIN)/ruff format --check service tests bench scripts clients/python

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

## generate: regenerate the committed stubs in generated/ and clients/python from protos/
generate: protos-deps
	$(PY) scripts/generate.py generated
	$(PY) scripts/generate_python_client.py

## generated-check: fail when generated/ is not what protos/ generates
generated-check: protos-deps
	$(PY) scripts/generate.py --check generated
	$(PY) scripts/generate_python_client.py --check

## clients: build both client libraries from protos/: the Python wheel into build/clients,
## the TypeScript package (generated at build time, compiled) in clients/typescript/dist
clients: $(BIN)/billing-service
	$(BIN)/pip wheel --quiet --no-deps --wheel-dir $(CLIENT_BUILD) clients/python
	npm --prefix clients/typescript ci --no-audit --no-fund
	npm --prefix clients/typescript run build

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

## test-tools: what the suite starts besides PostgreSQL, from Debian, each installed only
## when its command is missing (apt-get, retried while another install holds dpkg's lock):
## chromium (tests/test_api_browser.py), jq (the guides in docs/, run by
## tests/test_docs_run.py), PgBouncer (the pooler tests), and etcd, Patroni and the
## PostgreSQL 15 server binaries (tests/faults/test_failover.py's cluster).
## Each entry: a command, then the packages that bring it.
TEST_TOOLS := chromium:chromium jq:jq /usr/sbin/pgbouncer:pgbouncer \
	patroni:patroni,python3-etcd etcd:etcd-server /usr/lib/postgresql/15/bin/postgres:postgresql-15
test-tools:
	@missing=$$(for entry in $(TEST_TOOLS); do command -v $${entry%%:*} >/dev/null || \
		echo $${entry#*:} | tr , ' '; done); \
	[ -z "$$missing" ] || for attempt in 1 2 3 4 5 6 7 8 9 10; do \
		(apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y \
			--no-install-recommends $$missing) && break; \
		echo "test-tools: apt-get failed (dpkg's lock held?), retrying"; sleep 15; \
	done; for entry in $(TEST_TOOLS); do command -v $${entry%%:*} >/dev/null || \
		{ echo "test-tools: $${entry%%:*} is still missing"; exit 1; }; done

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache
