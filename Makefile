# LGC toolkit. `make` lists the targets. `make figures` and `make test` each work as
# the first command on a fresh machine: they create .venv (pip) unless an environment
# (venv or conda) is already active.
SHELL := /bin/bash
.DEFAULT_GOAL := help

ifneq ($(strip $(VIRTUAL_ENV)$(CONDA_PREFIX)),)
PY := python
STAMP :=
else
PY := .venv/bin/python
STAMP := .venv/.installed
endif
# The CPU wheel of torch lies on this machine's disk; a bare `torch` would pull a CUDA build.
TORCH ?= torch==2.13.0
# GPU machine: no package registry; its own python3 has torch and the scientific stack.
GPU_PY ?= python3
GPU_ENV := PYTHONPATH=$(CURDIR) PYTHONUNBUFFERED=1
# Targets that run on either machine use the GPU machine's python3 where nvidia-smi is (no venv
# can be built there), else the project's environment.
ifneq ($(shell command -v nvidia-smi 2>/dev/null),)
RUN_PY := $(GPU_PY)
RUN_DEPS :=
else
RUN_PY := $(PY)
RUN_DEPS := $(STAMP)
endif
DATA_DIR ?= data
# make test: pytest-xdist workers for the tests that do not watch the wall clock
TEST_WORKERS ?= 2
SHARED ?= ../shared

.PHONY: help install test test-dist-slow test-gpu test-integration figures figures-paper figures-cifar kstar-check kstar-models kstar-mlp data bench bench-dist gpu-carry \
	gpu-session gpu-rehearsal clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-17s %s\n", $$1, $$2}'

install: $(STAMP)  ## create .venv (unless an env is active) and install the project
ifeq ($(STAMP),)
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
endif

.venv/.installed: pyproject.toml
	python3 -m venv .venv
	.venv/bin/pip install -q --upgrade pip
	.venv/bin/pip install -q "$(TORCH)"
	.venv/bin/pip install -q -e ".[test]"
	touch $@

test: install  ## run the test suite (CPU, < 10 min on 2 cores): $(TEST_WORKERS) xdist workers, then the wall-clock tests alone
	@if $(PY) -c "import xdist" 2>/dev/null; then n="-n $(TEST_WORKERS)"; else n=""; \
	  echo "make test: pytest-xdist is not installed here, so the suite runs in one process"; fi; \
	set -x; $(PY) -m pytest -q $$n -m "not gpu and not data and not slow and not serial" && \
	$(PY) -m pytest -q -m "serial and not gpu and not data and not slow"

test-dist-slow: install  ## slow dist tests: two torchrun --nnodes 2 launchers on 127.0.0.1, one killed (~2 min)
	$(PY) -m pytest -q -m slow tests

test-integration: install  ## tests that use ../shared/data (CIFAR-10 copy)
	$(PY) -m pytest -q -m data tests || [ $$? -eq 5 ]

test-gpu:  ## GPU-only tests, on the device machine with its own python3
	$(GPU_ENV) $(GPU_PY) -m pytest -q -m gpu -p no:cacheprovider tests

figures: install  ## quick profile: every figure on CPU from embedded data (1 min 23 s on 2 idle cores, 157 CPU-s, measured)
	$(PY) -m paper_figures.quick

kstar-check: install  ## K* of optimize-k (the bound's, strong-convexity forms; the recommended one) against the measured best K: two quadratic grids (~4 min), then the model cells (kstar-models)
	$(PY) -m paper_figures.kstar_check --mu $(ARGS)
	$(PY) -m paper_figures.kstar_check --mu --grid second $(ARGS)
	$(PY) -m paper_figures.kstar_models --data-dir $(DATA_DIR) --shared-data $(SHARED)/data

kstar-models: install  ## 14 model cells (validation half fixed first): lgc estimate -> optimize-k -> lgc sweep-k, 3 seeds (~14 min; cached)
	$(PY) -m paper_figures.kstar_models --data-dir $(DATA_DIR) --shared-data $(SHARED)/data $(ARGS)

kstar-mlp: install  ## lgc estimate -> optimize-k -> measured K sweep at the budget, synthetic MLP (~10 min)
	$(PY) -m paper_figures.kstar_mlp $(ARGS)

figures-paper:  ## paper profile on CIFAR-10, GPU, resumable in chunks (GPU machine)
	$(GPU_ENV) $(GPU_PY) -m paper_figures.paper --data-dir $(DATA_DIR) $(ARGS)

figures-cifar: install  ## paper profile at CPU scale on CIFAR-10 (small CNN; 59-62 min on 2 cores measured; resumable)
	nice $(PY) -m paper_figures.paper --scale cpu --processes 2 --chunk-minutes 75 --data-dir $(DATA_DIR) \
		--shared-data $(SHARED)/data $(ARGS)

data:  ## download CIFAR-10 (official archive, MD5 checked) into $(DATA_DIR)
	$(PY) -m lgc.data.cifar10 download $(DATA_DIR)

bench: $(RUN_DEPS)  ## sim round vs plain step vs per-worker loop, samples/s and ratios (GPU or CPU)
	$(GPU_ENV) $(RUN_PY) -m lgc.bench $(ARGS)

bench-dist: install  ## dist coordination overhead, N = 8 gloo processes on CPU
	$(PY) -m lgc.bench.dist $(ARGS)

gpu-carry:  ## fill .carry/ (ignored; the device call carries it): CIFAR-10 JPEG copy, converter, code version
	@test -f $(SHARED)/data/cifar10-jpeg.tar.xz || { echo "gpu-carry: no $(SHARED)/data/cifar10-jpeg.tar.xz: set SHARED=DIR"; exit 2; }
	mkdir -p .carry
	cp $(SHARED)/data/cifar10-jpeg.tar.xz $(SHARED)/data/cifar10_from_jpeg.py .carry/
	git rev-parse HEAD > .carry/CODE_VERSION
	@echo "travels: $$( (git ls-files -z; find .carry -type f -print0) | du -cb --files0-from=- | tail -1 | cut -f1) bytes (limit 64 MiB = 67108864)"

gpu-session: $(RUN_DEPS)  ## GPU machine, one command: test-gpu, bench, paper profile cut to fit, one archive
	PYTHON=$(RUN_PY) bash scripts/gpu_session.sh $(ARGS)

gpu-rehearsal: $(RUN_DEPS)  ## the same session at tiny scale on a CPU (a few minutes), before a GPU call
	PYTHON=$(RUN_PY) bash scripts/gpu_session.sh --tiny $(ARGS)

clean:  ## remove the venv, caches and results (keeps committed figures)
	rm -rf .venv .pytest_cache build *.egg-info
	find . -name __pycache__ -prune -exec rm -rf {} +
	git clean -fdX results/ 2>/dev/null || true
