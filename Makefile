# Two commands on a fresh machine: `make demo` and `make test`. Each creates .venv itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: native demo test test-embedded test-apache check lint format types clean bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The per-event core compiled with mypyc (optional: without a C compiler the pure-Python
# reference runs; `wayline up` logs which). Rebuilt whenever a source changes.
NATIVE_STAMP := $(VENV)/.native
NATIVE_SOURCES := $(wildcard src/wayline/*/*.py)

$(NATIVE_STAMP): $(STAMP) $(NATIVE_SOURCES) native/build.py
	$(BIN)/python native/build.py
	touch $(NATIVE_STAMP)

native: $(NATIVE_STAMP)

demo: $(STAMP) $(NATIVE_STAMP)
	$(BIN)/wayline demo $(ARGS)

# Two lanes at once, each on a broker of its own: the embedded broker (unit tests, real
# processes end to end, its own quirks, broker faults) and Apache Kafka 4.x in KRaft mode,
# started from Maven Central artifacts (pipeline tests, crash batteries, broker faults,
# scale-out, a three-broker cluster). Each lane's output is printed when it ends; either
# failing fails the target. `make test ARGS=...` passes pytest arguments to both.
EMBEDDED_LANE := (not broker and not soak and not cluster) or embedded_only or faults
APACHE_LANE := (broker or soak or faults or cluster) and not embedded_only

# The report page's tests render it in Debian's chromium (Playwright drives it; the browser is
# never downloaded by `playwright install`).
CHROMIUM := /usr/bin/chromium

$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ]; then \
		apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 || \
		{ apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends chromium >/dev/null; }; \
	else echo "the report page tests need Debian's chromium: sudo apt-get install chromium"; fi

test: $(STAMP) $(NATIVE_STAMP) $(CHROMIUM)
	@mkdir -p $(VENV)/lanes
	@( WAYLINE_TEST_BROKER=apache $(BIN)/pytest -q -p no:cacheprovider -m "$(APACHE_LANE)" $(ARGS) \
		> $(VENV)/lanes/apache.log 2>&1; echo $$? > $(VENV)/lanes/apache.rc ) & \
	WAYLINE_TEST_BROKER=embedded $(BIN)/pytest -q -m "$(EMBEDDED_LANE)" $(ARGS) \
		> $(VENV)/lanes/embedded.log 2>&1; echo $$? > $(VENV)/lanes/embedded.rc; \
	wait; \
	for lane in embedded apache; do \
		echo "=== lane $$lane (exit $$(cat $(VENV)/lanes/$$lane.rc))"; cat $(VENV)/lanes/$$lane.log; \
	done; \
	test "$$(cat $(VENV)/lanes/embedded.rc)$$(cat $(VENV)/lanes/apache.rc)" = "00"

test-embedded: $(STAMP) $(NATIVE_STAMP) $(CHROMIUM)
	WAYLINE_TEST_BROKER=embedded $(BIN)/pytest -q -m "$(EMBEDDED_LANE)" $(ARGS)

test-apache: $(STAMP) $(NATIVE_STAMP)
	WAYLINE_TEST_BROKER=apache $(BIN)/pytest -q -m "$(APACHE_LANE)" $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# mypy --strict over every module of the package (src layout: the same from any directory), the
# tests and the benchmarks; import-linter keeps the layers apart (contracts in pyproject.toml).
types: $(STAMP)
	$(BIN)/mypy
	$(BIN)/lint-imports

check: lint types test

BENCH_STAMP := $(VENV)/.bench

$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

# quixstreams, a baseline of bench.pipeline, pins an older confluent-kafka: a venv of its own.
QUIX_STAMP := $(VENV)/quix/.installed

$(QUIX_STAMP): $(STAMP)
	$(PYTHON) -m venv $(VENV)/quix
	$(VENV)/quix/bin/pip install --quiet quixstreams==3.28.1
	touch $(QUIX_STAMP)

# Benchmarks are not part of `make test`; each prints ratios against a baseline of the same run.
bench: $(STAMP) $(NATIVE_STAMP) $(BENCH_STAMP) $(QUIX_STAMP)
	$(BIN)/python bench/codec.py
	$(BIN)/python -m bench.runtime
	$(BIN)/python -m bench.collector
	$(BIN)/python -m bench.profiles
	$(BIN)/python -m bench.deliveries
	$(BIN)/python -m bench.pipeline
	$(BIN)/python -m bench.lookups

clean:
	rm -rf $(VENV) build *.egg-info
