# Two commands on a fresh machine: `make demo` and `make test`. Each creates .venv itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: FORCE demo test check lint format types clean bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]' --config-settings editable_mode=strict
	touch $(STAMP)

# A strict editable install links files one by one, so a new module needs a re-link: redo it
# whenever the list of modules changes.
MODULES := $(sort $(wildcard wayline/*.py streams/*.py profiles/*.py segments/*.py connectors/*.py schemas/*.py))
LINKED := $(VENV)/.modules

$(LINKED): $(STAMP) FORCE
	@echo "$(MODULES)" | cmp -s - $@ || { $(BIN)/pip install --quiet --no-deps -e . --config-settings editable_mode=strict && echo "$(MODULES)" > $@; }

FORCE:

demo: $(LINKED)
	$(BIN)/wayline demo $(ARGS)

test: $(LINKED)
	$(BIN)/pytest -q $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Run from inside .venv: in the project root, ./wayline (without its subpackages) would shadow
# the installed package that maps wayline.streams, wayline.schemas, ... onto their folders.
types: $(LINKED)
	cd $(VENV) && bin/mypy --config-file ../pyproject.toml -p wayline
	$(BIN)/mypy tests bench

check: lint types test

BENCH_STAMP := $(VENV)/.bench

$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,bench]' --config-settings editable_mode=strict
	touch $(BENCH_STAMP)

# Benchmarks are not part of `make test`; each prints ratios against a baseline of the same run.
bench: $(LINKED) $(BENCH_STAMP)
	$(BIN)/python bench/codec.py
	$(BIN)/python -m bench.runtime
	$(BIN)/python -m bench.collector
	$(BIN)/python -m bench.profiles

clean:
	rm -rf $(VENV) build *.egg-info
