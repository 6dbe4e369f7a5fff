# magnet-bench: one-liners over `python -m bench`. DATASET=synthetic by default.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DATASET ?= synthetic
ARGS ?=
ROOT_ARG := $(if $(DATA_ROOT),data_root=$(DATA_ROOT),)

.PHONY: install test test-all bench train tables drift list clean-runs

$(PY):
	$(PYTHON) -m venv $(VENV)

install: $(PY)
	$(PY) -m pip install -e ".[dev]"

test: $(PY)
	$(PY) -m pytest -q

test-all: $(PY)
	$(PY) -m pytest -q -m ""

bench: $(PY)
	$(PY) -m bench run $(DATASET) $(ROOT_ARG) $(ARGS)

train: $(PY)
	$(PY) -m bench train $(DATASET) $(ROOT_ARG) $(ARGS)

tables: $(PY)
	$(PY) -m bench table $(DATASET) $(ROOT_ARG) $(ARGS)

drift: $(PY)
	$(PY) -m bench drift $(DATASET)

list: $(PY)
	$(PY) -m bench list

clean-runs:
	rm -rf results/runs results/tables
