# customs-vision: the two commands a user needs are `make run` and `make test`.
# Each sets itself up first (a .venv/ in the repo root with pinned packages); re-running is quick.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
EXTRAS := train,triton,postgres,dev

.PHONY: setup run test lint typecheck unit system-deps clean

setup: $(STAMP) system-deps

# Reinstall only when the dependency pins change. constraints.txt pins every transitive package.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==26.3
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[$(EXTRAS)]'
	@touch $(STAMP)

# Debian packages the synthetic document generator needs (Hangul + Latin fonts). Installed only
# when missing, and only where we may (root or passwordless sudo); otherwise we say what to install.
system-deps:
	@bash scripts/system-deps.sh

run: setup
	$(BIN)/customs-vision serve

test: setup lint typecheck unit

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck:
	$(BIN)/mypy vision detectors similarity service deploy

unit:
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
