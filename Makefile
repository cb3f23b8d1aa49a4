# `make test` and `make demo` set themselves up: a virtual environment in .venv (or $VENV)
# with the package installed in editable mode.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export TF_CPP_MIN_LOG_LEVEL := 3

.PHONY: test demo lint clean

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# pip relays setuptools' "Editable installation." notice as a warning even with --quiet.
	$(PY) -W "ignore:Editable installation:UserWarning" -m pip install --quiet -e '.[test,serving]'
	touch $@

# Two workers, each test file on one (its module fixtures are built once), the slowest files
# first (tests/conftest.py) and not reordered by their number of tests.
test: $(VENV)/.installed
	$(PY) -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder --durations=15 tests

demo: $(VENV)/.installed
	$(PY) tools/demo.py --output_dir demo_output --data_dir data/demo

lint: $(VENV)/.installed
	$(PY) -m pip install --quiet ruff
	$(VENV)/bin/ruff check keras_binaural tools tests benchmarks configs

clean:
	rm -rf $(VENV) build *.egg-info
