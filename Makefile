# `make demo` and `make test` each create .venv and install what they need on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint typecheck unit bench clean

# The demo needs only taskorch itself; the tests add the dev tools (.installed implies .core).
$(BIN)/.core: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(BIN)/.installed: $(BIN)/.core
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

demo: $(BIN)/.core
	@bash scripts/demo.sh

lint: $(BIN)/.installed
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(BIN)/.installed
	$(BIN)/mypy --strict

# Four processes, spread test by test (worksteal): the suite waits on git, agents and servers half
# its time, so four keep CI's 2 cores busy, and an idle process takes tests from a busy one instead
# of waiting on the last long file; TEST_WORKERS=0 runs the tests in one.
TEST_WORKERS ?= 4

unit: $(BIN)/.installed
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist worksteal

test: lint typecheck unit

bench: $(BIN)/.installed
	$(BIN)/python bench/dag.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
