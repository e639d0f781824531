# The README's two commands: `make demo` and `make test`. Both create .venv on first use.
# `make docs` builds the documentation (docs/) into docs/_build/html, warnings as errors.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 5000
# The oldest and newest Pythons we support (setup.cfg's classifiers); .ci/python.sh finds them.
PY_OLDEST ?= 3.9
PY_NEWEST ?= 3.13
# `make bench BENCH_ARGS=--quick`: a few rounds only (what CI runs, to keep the benchmarks from rotting).
BENCH_ARGS ?=

# Editable installs in "compat" mode: a plain path in a .pth file, which mypy (and other static
# tools) can follow; setuptools' default mode is an import hook only Python itself runs.
EDITABLE := --config-settings editable_mode=compat

.PHONY: demo test docs test-py39 test-py313 test-versions dist bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed-test: $(BIN)/python setup.cfg pyproject.toml Makefile
	$(BIN)/python -m pip install -q $(EDITABLE) -e '.[test,postgres]'
	touch $@

$(VENV)/.installed: $(BIN)/python setup.cfg pyproject.toml Makefile
	$(BIN)/python -m pip install -q $(EDITABLE) -e '.[example]'
	touch $@

$(VENV)/.installed-docs: $(BIN)/python setup.cfg pyproject.toml Makefile
	$(BIN)/python -m pip install -q $(EDITABLE) -e '.[docs]'
	touch $@

demo: $(VENV)/.installed
	@echo "ShopEasy (example_app) against the embedded HAVN sandbox: open http://$(HOST):$(PORT)/"
	$(BIN)/flask --app example_app run --host $(HOST) --port $(PORT)

# -ra: every skipped test says why (e.g. no PostgreSQL or Chromium here).
test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -ra $(PYTEST_ARGS)

# The HTML site (docs/_build/html), with Sphinx's warnings as errors. The examples in the docs and
# the README are run by the test suite (tests/test_docs_examples.py), not here.
docs: $(VENV)/.installed-docs
	$(BIN)/python -m sphinx -W --keep-going -q -b html docs docs/_build/html

# The suite on another Python, in its own venv (.venv-py3.9, .venv-py3.13).
.venv-py%/.installed-test: setup.cfg pyproject.toml
	interpreter="$$(bash .ci/python.sh $*)" && "$$interpreter" -m venv .venv-py$*
	.venv-py$*/bin/python -m pip install -q --upgrade pip
	.venv-py$*/bin/python -m pip install -q $(EDITABLE) -e '.[test,postgres]'
	touch $@

test-py39: .venv-py$(PY_OLDEST)/.installed-test
	.venv-py$(PY_OLDEST)/bin/python -m pytest -ra $(PYTEST_ARGS)

test-py313: .venv-py$(PY_NEWEST)/.installed-test
	.venv-py$(PY_NEWEST)/bin/python -m pytest -ra $(PYTEST_ARGS)

test-versions: test-py39 test-py313

# sdist + wheel, twine check, and the wheel installed in a clean venv and smoke-tested.
dist:
	PYTHON=$(PYTHON) bash .ci/package.sh

bench: $(VENV)/.installed-test
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .venv-py* build dist *.egg-info .pytest_cache docs/_build
