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

# Every registered method once on the real samples of ../shared/data (Cityscapes 2048x1024 and
# halved, DeepGlobe 2448x2448, Inria 1000x1000) at native size with the synthetic weights: proves
# the loaders and the methods at real sizes and records time and peak memory into results/smoke/.
# Skips (exit 0) without the data; needs the synthetic weights (`make bench` or `make train`).
SMOKE_DATA ?= ../shared/data
.PHONY: smoke
smoke: $(PY)
	OMP_NUM_THREADS=1 $(PY) -m bench smoke --data $(SMOKE_DATA) $(ARGS)

# The sweep and the training under torchrun: NPROC processes on this node, each on its shard of
# the images (cuda:LOCAL_RANK with device=cuda). Several nodes: run the same command on each with
# TORCHRUN_ARGS="--nnodes=M --node_rank=K --master_addr=HOST0 --master_port=29500".
NPROC ?= 2
TORCHRUN_ARGS ?= --standalone
.PHONY: bench-dist train-dist
bench-dist: $(PY)
	$(PY) -m torch.distributed.run $(TORCHRUN_ARGS) --nproc_per_node=$(NPROC) -m bench run $(DATASET) $(ROOT_ARG) $(ARGS)

train-dist: $(PY)
	$(PY) -m torch.distributed.run $(TORCHRUN_ARGS) --nproc_per_node=$(NPROC) -m bench train $(DATASET) $(ROOT_ARG) $(ARGS)
