# The two commands of the README: `make demo` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test test-sqlite test-postgres lint lint-imports migrations bench bench-import serve clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## Install, then run the main job on the embedded default (SQLite, bundled sample data).
demo: install
	$(VENV)/bin/rsa demo

## Install (Python packages, PostgreSQL server, Chromium), check the import contracts, then run the
## whole suite on SQLite and PostgreSQL.
test: install
	$(MAKE) --no-print-directory lint-imports
	bash .ci/chromium.sh
	$(MAKE) --no-print-directory test-sqlite
	$(MAKE) --no-print-directory test-postgres

test-sqlite: install
	$(PY) -m pytest

test-postgres: install
	RSA_TEST_DATABASE_URL="$$(bash .ci/postgres.sh)" $(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check .
	$(MAKE) --no-print-directory lint-imports

## The architecture's import contracts (.importlinter, explained in docs/architecture.md).
lint-imports: install
	$(VENV)/bin/lint-imports .importlinter

## Rebuild the initial migration from the models (development only, before the first deployment).
migrations: install
	$(PY) -m config.migrate regenerate

bench: install
	$(PY) -m bench

## CAF/MSA flow import benchmark only (10k and 100k households, SQLite and PostgreSQL).
bench-import: install
	$(PY) -m bench --only import_flux

serve: install
	$(VENV)/bin/rsa init
	$(VENV)/bin/rsa serve

clean:
	rm -rf $(VENV) var/*.sqlite3* var/demo .pytest_cache
