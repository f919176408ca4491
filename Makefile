# tokenguard — the two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev

.PHONY: demo test lint typecheck pytest install clean bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev,sandbox,apify]'
	touch $(STAMP)

install: $(STAMP)

# `make demo VENV=/path/to/venv SKIP_INSTALL=1` runs with an environment that already has
# tokenguard's dependencies (the clone test does this); a plain `make demo` installs them.
demo: $(if $(SKIP_INSTALL),,$(STAMP))
	$(BIN)/tokenguard demo

lint: $(STAMP)
	$(BIN)/ruff check tokenguard tests bench scripts
	$(BIN)/ruff format --check tokenguard tests bench scripts

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/python -m pytest -q

test: lint typecheck pytest

bench: $(STAMP)
	for b in bench/[!_]*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .pytest_cache .ruff_cache
