# Two entry points: `make demo` and `make test`. Both create or reuse .venv and install
# what is missing, so they work on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/syncjob demo

lint: $(STAMP)
	$(BIN)/ruff check engine connectors tests examples bench

typecheck: $(STAMP)
	$(BIN)/mypy --strict engine connectors

test: lint typecheck
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python bench/bench_memory.py
	$(BIN)/python bench/bench_mapping.py

clean:
	rm -rf $(VENV) demo-state .pytest_cache .mypy_cache .ruff_cache
