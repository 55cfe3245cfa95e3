# Two entry points (see README): `make demo` and `make test` (`make test-min`: the suite on the dependency floors).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-min install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	VENV=$(VENV) ./scripts/demo.sh

test: $(STAMP)
	$(BIN)/lint-imports --no-cache --no-logo
	$(BIN)/python -m pytest -q -n auto

# The suite on the lowest versions pyproject.toml allows (.ci/constraints-min.txt pins each to its floor), in its own
# venv so .venv keeps the newest ones. Slower than `make test` only by the install (~1 min) on first use.
VENV_MIN ?= .venv-min
MIN_STAMP := $(VENV_MIN)/.installed

$(MIN_STAMP): pyproject.toml .ci/constraints-min.txt
	rm -rf $(VENV_MIN)
	$(PYTHON) -m venv $(VENV_MIN)
	$(VENV_MIN)/bin/python -m pip install --quiet --upgrade pip
	$(VENV_MIN)/bin/python -m pip install --quiet -e '.[test]' -c .ci/constraints-min.txt
	touch $(MIN_STAMP)

# No --no-logo: import-linter 2.1 (the floor) has no logo and no such option. HFGET_TEST_MIN_VERSIONS makes
# tests/test_min_versions.py check that what pip installed is each floor.
test-min: $(MIN_STAMP)
	$(VENV_MIN)/bin/lint-imports --no-cache
	HFGET_TEST_MIN_VERSIONS=1 $(VENV_MIN)/bin/python -m pytest -q -n auto

clean:
	rm -rf $(VENV) $(VENV_MIN) .demo .pytest_cache
