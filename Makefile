# customs-vision: the two commands a user needs are `make run` and `make test`.
# Each sets itself up first (a .venv/ in the repo root with pinned packages); re-running is quick.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
EXTRAS := train,triton,postgres,dev

.PHONY: setup run test lint typecheck unit system-deps test-deps setup-triton setup-kubeconform clean

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

# The tests also need what real users run beside the service: a real Triton server (bundled in
# nvidia-pytriton, in its own venv because it needs numpy<2), a Kubernetes schema validator and
# Chromium for the web-page test.
test: setup test-deps setup-triton setup-kubeconform lint typecheck unit

test-deps:
	@bash scripts/system-deps.sh --test

setup-triton:
	@bash scripts/setup-triton.sh

setup-kubeconform:
	@bash scripts/setup-kubeconform.sh

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck:
	$(BIN)/mypy vision detectors similarity service deploy

# The PostgreSQL tests run against a real, throwaway server started for the run and always stopped.
unit:
	@url=$$(bash scripts/pg-test-server.sh start) || { echo "could not start PostgreSQL for the tests" >&2; exit 1; }; \
	CV_TEST_POSTGRES_URL=$$url $(BIN)/pytest -q; rc=$$?; \
	bash scripts/pg-test-server.sh stop; exit $$rc

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
