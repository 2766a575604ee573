# Smart MDM — the two commands: `make demo` and `make test`. Each installs what it needs
# into .venv on first use (Python 3.11+, pip from PyPI), so a fresh clone needs nothing else.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/data/dagster_home
export SMARTMDM_DATA_DIR ?= $(CURDIR)/data
export DAGSTER_DISABLE_TELEMETRY := 1
export GX_ANALYTICS_ENABLED := false

.PHONY: install demo ui test lint bench fuzz audit clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip uv
	$(BIN)/uv pip install --python $(BIN)/python --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)            ## generate a synthetic utility, ingest it through Dagster, print a summary
	$(BIN)/smartmdm demo

ui: $(STAMP)              ## the Dagster UI on the demo's data: http://127.0.0.1:3000
	$(BIN)/smartmdm ui

test: $(STAMP)            ## the whole test suite (DuckDB and PostgreSQL at 127.0.0.1:5432)
	$(BIN)/ruff check smartmdm_pipelines smartmdm_pipelines_tests benchmarks
	$(BIN)/pytest

fuzz: $(STAMP)            ## nightly-style fuzzing: 20,000 inputs per target, a 1 GiB single-line file
	SMARTMDM_FUZZ_EXAMPLES=$${SMARTMDM_FUZZ_EXAMPLES:-20000} SMARTMDM_FUZZ_BIG_MB=$${SMARTMDM_FUZZ_BIG_MB:-1024} \
	  $(BIN)/pytest -m fuzz -p no:cacheprovider -q

# pip-audit in a venv of its own (so the audited set is the project's alone); --strict makes a
# package it could not check a failure, not a silent skip. It needs a vulnerability service
# (PyPI's per-version JSON API, or OSV with AUDIT_SERVICE=osv): see docs/reliability.md.
AUDIT_VENV := .venv-audit
AUDIT_SERVICE ?= pypi
audit: $(STAMP)           ## pip-audit --strict over the pinned set of .venv (needs PyPI's JSON API or OSV)
	test -x $(AUDIT_VENV)/bin/pip-audit || { $(PYTHON) -m venv $(AUDIT_VENV) && $(AUDIT_VENV)/bin/pip install --quiet pip-audit; }
	$(BIN)/python -m pip freeze --exclude-editable > $(VENV)/audit-requirements.txt
	$(AUDIT_VENV)/bin/pip-audit --strict --no-deps --disable-pip --progress-spinner off \
	  --vulnerability-service $(AUDIT_SERVICE) -r $(VENV)/audit-requirements.txt

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_store.py

clean:
	rm -rf data .pytest_cache
