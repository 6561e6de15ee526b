# Two commands do all setup on a fresh machine: `make serve` and `make test`.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
PORT    ?= 8080
ENV     ?= dev

.PHONY: install serve test test-fast lint bench eval mutate clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

serve: install
	$(BIN)/python -m cli.devserve --policies policies --env $(ENV) --port $(PORT)

test: install
	$(BIN)/python -m pytest -n 2 --dist loadgroup

test-fast: install
	$(BIN)/python -m pytest -n 2 -m "not slow"

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy dsl engine adapters cli server.py

bench: install
	$(BIN)/python -m pytest bench -p no:xdist --benchmark-only -o testpaths=bench

eval: install
	$(BIN)/python -m tests.corpus.evaluate

# Mutation run over the evaluator, compiler, guards and checker (tens of minutes; not part of `make test`).
mutate: install
	$(BIN)/python -m tests.mutate --workers 2

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
