# Two commands do all the set-up: `make train` and `make test` create .venv on first use.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
# The PyTorch to install first. Which build pip picks depends on the index: PyPI's Linux wheel
# bundles CUDA; for a CPU-only build pass PyTorch's CPU index, e.g.
# make install TORCH="torch==2.13.0 --index-url <PyTorch CPU wheel index>"
TORCH ?= torch==2.13.0
ARGS ?=
PYTEST_ARGS ?=

.PHONY: install train test test-fast lint format clean gpu-check

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet $(TORCH)
	$(PYTHON) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

## Train with the defaults, or `make train ARGS="model/size=medium data=names"`.
train: install
	$(PYTHON) run.py $(ARGS)

## Lint, then every test (slow ones included, as CI runs them).
test: install lint
	$(PYTHON) -m pytest $(PYTEST_ARGS)

## The fast suite only (about a minute).
test-fast: install
	$(PYTHON) -m pytest -m "not slow" $(PYTEST_ARGS)

## On a machine with a GPU: every GPU path once, in under 8 minutes (benchmarks/README.md).
gpu-check: install
	$(PYTHON) benchmarks/gpu_check.py $(ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf outputs multirun .pytest_cache .ruff_cache
