# magnet-bench: one-liners over `python -m bench`. DATASET=synthetic by default.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DATASET ?= synthetic
ARGS ?=
ROOT_ARG := $(if $(DATA_ROOT),data_root=$(DATA_ROOT),)

.PHONY: install lint test test-all bench train tables check-data drift drift-kernels drift-measure reference seeds train-check readme list clean-runs

$(PY):
	$(PYTHON) -m venv $(VENV)

# Every command but `install` needs the installed project: without it, stop with the command to run
# (instead of creating an empty .venv and failing on `No module named 'yaml'`). Finds, not imports.
READY_CHECK := import importlib.metadata as m, importlib.util as u, sys; m.distribution('magnet-bench'); \
  sys.exit(any(u.find_spec(n) is None for n in ('yaml', 'torch', 'cv2', 'mmseg', 'pydensecrf')))
.PHONY: ready
ready:
	@test -x $(PY) && $(PY) -c "$(READY_CHECK)" 2>/dev/null || { \
	  echo "make: $(VENV) lacks magnet-bench or its dependencies. Run first:  make install" >&2; \
	  echo "      (creates $(VENV) with $(PYTHON) and installs the pinned dependencies; pydensecrf compiles for about a minute)" >&2; \
	  exit 1; }

install: $(PY)
	$(PY) -m pip install -e ".[dev]"
	# test oracle of cascadepsp (its model code needs only torch; it declares torchvision, which has no CPU build here)
	$(PY) -m pip install --no-deps segmentation-refinement==0.6
	# test oracle of the Cityscapes metric; --no-deps: it declares the Python 2 era `typing` backport,
	# which breaks pip on Python 3 (its real imports, numpy/pillow/pyquaternion, are in the dev extra)
	$(PY) -m pip install --no-deps cityscapesscripts==2.3.0

# ruff, mypy and the import-linter layer contracts as configured in pyproject.toml (run by .ci/run)
lint: ready
	$(PY) -m ruff check bench baselines magnet examples perf tests
	$(PY) -m mypy
	$(VENV)/bin/lint-imports

test: ready
	$(PY) -m pytest -q

test-all: ready
	$(PY) -m pytest -q -m ""

# The slow tests alone (pytest -m slow: every method on a generated folder, the DeepGlobe and
# Cityscapes released runs, ten random kills, mypy, ...); not in `make test`. Time: docs/testing.md.
.PHONY: test-slow test-slow-ci
test-slow: ready
	$(PY) -m pytest -q -m slow --durations=0 $(ARGS)

# The slow subset CI runs (.ci/run), capped at SLOW_CI_CAP seconds: 3 to 8 minutes measured on 2
# shared cores (docs/testing.md). Left out: test_batch (one case alone takes 8.5 minutes) and
# test_lint (make lint runs mypy already).
SLOW_CI ?= tests/test_kill.py tests/test_folder_dataset.py tests/test_released.py tests/test_glnet.py \
  tests/test_backbones.py tests/test_release_keys.py tests/test_mmseg_adapter.py tests/test_synthetic.py tests/test_perf.py \
  tests/test_html_report.py tests/test_api.py
SLOW_CI_CAP ?= 1800
test-slow-ci: ready
	timeout $(SLOW_CI_CAP) $(PY) -m pytest -q -m slow --durations=10 $(SLOW_CI)

# Mutation testing of the core (not in CI; docs/mutation.md): first the one-line changes the suite
# was once blind to (tests/blind_spots.py: each must fail its tests), then mutmut on the modules of
# [tool.mutmut] in pyproject.toml, in a copy of the working tree at MUTATION_DIR (the checkout is
# never mutated). MUTANTS="magnet.scoring*" limits mutmut to matching mutant names.
MUTATION_DIR ?= /tmp/magnet-bench-mutation
MUTANTS ?=
.PHONY: mutation
mutation: ready
	$(PY) tests/blind_spots.py
	rm -rf $(MUTATION_DIR)
	$(PY) tests/blind_spots.py --copy-to $(MUTATION_DIR)
	cd $(MUTATION_DIR) && $(abspath $(VENV))/bin/mutmut run --max-children 2 $(MUTANTS) > mutmut.log 2>&1 || { tail -30 mutmut.log; exit 1; }
	cd $(MUTATION_DIR) && $(abspath $(VENV))/bin/mutmut results | tee survivors.txt
	$(PY) tests/mutation_report.py $(MUTATION_DIR) docs/mutation.md
	@echo "mutation: survivors in $(MUTATION_DIR)/survivors.txt (counts rendered into docs/mutation.md); see each with: cd $(MUTATION_DIR) && $(abspath $(VENV))/bin/mutmut show NAME"

bench: ready
	$(PY) -m bench run $(DATASET) $(ROOT_ARG) $(ARGS)

# The extended sweep: the default methods plus those too slow for the 5-minute default (CascadePSP:
# about 35 s of CPU per synthetic image; about 100 s per 2048x1536 big_synthetic image and coarse
# source), records in results/runs/<dataset>-full.
FULL_METHODS ?= cascadepsp
.PHONY: bench-full
bench-full: ready
	$(PY) -m bench run $(DATASET) $(ROOT_ARG) "methods=[$$($(PY) -c "from bench.pipeline.configure import load; print(','.join(load('$(DATASET)').methods))"),$(FULL_METHODS)]" out_dir=results/runs/$(DATASET)-full $(ARGS)

train: ready
	$(PY) -m bench train $(DATASET) $(ROOT_ARG) $(ARGS)

tables: ready
	$(PY) -m bench table $(DATASET) $(ROOT_ARG) $(ARGS)

# Check a data folder before a run: every image and label decoded, every bad file named (exit 1).
check-data: ready
	$(PY) -m bench check-data $(DATASET) $(ROOT_ARG) --full $(ARGS)

# The drift gate: the reference weights on a small subset, every method of the default sweep (~1 min).
drift: ready
	$(PY) -m bench drift $(DATASET)

# The gate under other CPU kernels (what CI runs besides `make drift`): a pass means other CPUs pass too.
drift-kernels: ready
	ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41 NPY_DISABLE_CPU_FEATURES="X86_V3 X86_V4" \
	  OPENCV_CPU_DISABLE=AVX2,FMA3,AVX,FP16 $(PY) -m bench drift $(DATASET)

# Re-measure the gate's tolerances under every kernel set this CPU allows and rewrite the baseline.
drift-measure: ready
	$(PY) -m bench drift $(DATASET) --measure

# Regenerate the committed reference weights (weights/$(DATASET)): train from scratch (~50 min on
# 2 cores for synthetic), evaluate, write the manifest, install. SEED=k for another seed.
SEED ?= 0
reference: ready
	$(PY) -m bench reference $(DATASET) --seed $(SEED) --install $(ARGS)

# The spread of training: the reference schedule with SEEDS, then the spread table (results/seeds/).
SEEDS ?= 0,1,2
seeds: ready
	$(PY) -m bench seeds $(DATASET) --seeds $(SEEDS) $(ARGS)

# Training drift (slow, not in CI): retrain the backbone, DGF and SegFix with the reference's seed
# and compare with weights/$(DATASET)/manifest.json (bit-identical on its fingerprint, else within
# the seed spread). TRAIN_CHECK_ARGS= retrains every learned method.
TRAIN_CHECK_ARGS ?= methods=[downsample,patching,dgf,segfix] table1_sizes=[]
train-check: ready
	$(PY) -m bench train-check $(DATASET) $(TRAIN_CHECK_ARGS) $(ARGS)

# Render the result blocks of README.md and docs/*.md from the committed records (results/published/,
# results/seeds/, ...; docs/reproducibility.md lists which block reads which file).
readme: ready
	$(PY) -m bench readme $(DATASET) $(ARGS)

# Copy the run folders of `make bench` (and `make bench-full`, `make smoke`) into results/published/
# (committed: what the pages render), then render. Refuses a run whose records miss a unit.
.PHONY: publish
publish: ready
	$(PY) -m bench readme $(DATASET) --publish $(ARGS)

# The manual (mkdocs.yml, docs/) into site/; --strict: a broken link, anchor or nav entry fails it.
.PHONY: docs
docs: ready
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

list: ready
	$(PY) -m bench list

clean-runs:
	rm -rf results/runs results/tables

# Every registered method once on the real samples of ../shared/data (Cityscapes 2048x1024 and
# halved, DeepGlobe 2448x2448, Inria 1000x1000) at native size with the synthetic weights: proves
# the loaders and the methods at real sizes and records time and peak memory into results/smoke/.
# Skips (exit 0) without the data; uses the reference weights (weights/synthetic).
SMOKE_DATA ?= ../shared/data
.PHONY: smoke
smoke: ready
	OMP_NUM_THREADS=1 $(PY) -m bench smoke --data $(SMOKE_DATA) $(ARGS)

# A rehearsal at real scale (issue 21, item 7): the synthetic street scenes written as Cityscapes files
# at 2048x1024 (bench.data.rehearsal), then the mission's own command `bench run cityscapes
# data_root=<them> train=true` with a few steps per learned method, time and peak memory per stage
# (results/runs/rehearsal/<dataset>/, the record in results/rehearsal/), then docs/rehearsal.md rendered
# from the records. REHEARSE_DATASET=deepglobe|inria for the aerial layouts; REHEARSE_ARGS="--data DIR"
# for a folder of real frames in the layout (never copied into the repository).
REHEARSE_DATASET ?= cityscapes
REHEARSE_ARGS ?=
REHEARSE_RECORDS ?= $(wildcard results/rehearsal/*.json)
.PHONY: rehearse rehearse-docs
rehearse: ready
	$(PY) -m bench rehearse $(REHEARSE_DATASET) $(REHEARSE_ARGS) $(ARGS)
	$(MAKE) rehearse-docs

rehearse-docs: ready
	$(PY) -m bench rehearse --render $(REHEARSE_RECORDS) --docs docs/rehearsal.md

# The time-memory trade-off of the batch setting (issue 21, item 9): the sweep once per setting of
# BATCHES (every batching method's declared option; tables at batch 1 otherwise), each into
# <out_dir>-batch<B>, then results/tables/<dataset>/batch.md in the style of the supplement's Table 1.
BATCHES ?= 1,4,16
.PHONY: bench-batch
bench-batch: ready
	$(PY) -m bench batch-sweep $(DATASET) $(ROOT_ARG) --batches $(BATCHES) $(ARGS)

# The sweep and the training under torchrun: NPROC processes on this node, each on its shard of
# the images (cuda:LOCAL_RANK with device=cuda). Several nodes: run the same command on each with
# TORCHRUN_ARGS="--nnodes=M --node_rank=K --master_addr=HOST0 --master_port=29500".
NPROC ?= 2
TORCHRUN_ARGS ?= --standalone
.PHONY: bench-dist train-dist
bench-dist: ready
	$(PY) -m torch.distributed.run $(TORCHRUN_ARGS) --nproc_per_node=$(NPROC) -m bench run $(DATASET) $(ROOT_ARG) $(ARGS)

train-dist: ready
	$(PY) -m torch.distributed.run $(TORCHRUN_ARGS) --nproc_per_node=$(NPROC) -m bench train $(DATASET) $(ROOT_ARG) $(ARGS)

# Same-run speed comparisons (perf/, python -m perf; not a test): guided filter vs guided-filter-pytorch,
# backbone forward today's (reference) vs the exact default vs folded/channels-last, fp32 matmul peak and fraction of it, MagNet and
# MagNet-Fast image calls; writes results/perf/perf.json (make readme renders it). ~30 min on 2 cores.
.PHONY: perf
perf: ready
	$(PY) -m perf $(ARGS)

# The CUDA path in one prepared script (perf/gpu_check.py, at most ~10 min on one GPU): environment,
# the drift gate on the GPU against the CPU values, the synthetic sweep, MagNet at 2048x1024 per patch
# batch in fp32 and autocast, backbone training steps/s; writes results/gpu/gpu_check.json.
# On a machine without this venv: PYTHONPATH=. python -m perf.gpu_check --out <folder>
.PHONY: gpu-check
gpu-check: ready
	$(PY) -m perf.gpu_check $(ARGS)
