# Tideflow: the commands the README promises. Each bootstraps what it needs:
# uv (installed with pip when missing) and the locked workspace (`uv sync --locked`).
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV = $(shell tools/scripts/bootstrap.sh)
# GPU tests run only where a GPU is visible; everything else runs everywhere.
HAS_GPU := $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo yes)
PYTEST_MARKERS := $(if $(HAS_GPU),,-m "not gpu")
BENCHES := $(patsubst tools/bench/%.py,%,$(wildcard tools/bench/[a-z]*.py))

.PHONY: help sync system-deps demo demo-rl test lint format check-extras broker docs docs-serve bench $(addprefix bench-,$(BENCHES))

help: ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

# --compile-bytecode: uv does not write .pyc files, and where PYTHONDONTWRITEBYTECODE is set
# (containers, CI images) Python never does either, so every Ray worker would compile Ray,
# pyarrow and torch from source at start-up: `import ray` 2.7 s instead of 1 s, per process.
sync: ## install the locked workspace into .venv
	@$(UV) sync --locked --quiet --compile-bytecode

system-deps: ## the CJK font, espeak-ng and chromium the tests and demo use (apt, when missing)
	@tools/scripts/system_deps.sh

demo: sync system-deps ## run the main end-to-end job on embedded defaults
	@$(UV) run --locked tideflow-demo

demo-rl: sync ## train a tiny transformer with async GRPO on CPU; prints metrics, writes a curve
	@$(UV) run --locked tideflow-rl demo --out bench-results/demo-rl

test: sync system-deps ## run every test this machine can run
	@$(UV) run --locked pytest $(PYTEST_MARKERS)

lint: sync ## ruff (lint + format check) and mypy
	@$(UV) run --locked ruff check .
	@$(UV) run --locked ruff format --check .
	@$(UV) run --locked mypy

format: sync ## apply ruff's fixes and formatting
	@$(UV) run --locked ruff check --fix .
	@$(UV) run --locked ruff format .

check-extras: sync ## wheels in a clean venv: streaming without, then with, its connector extras
	@$(UV) run --locked python tools/check_extras.py --uv $(UV)

broker: sync ## run a local Kafka-protocol broker on 127.0.0.1:9092 (Ctrl-C stops it)
	@$(UV) run --locked tideflow-broker

# The site: `mkdocs build --strict` (a broken link or reference fails) into site/, then the
# API check (every public name of each `__all__` in the reference with its docstring) and
# screenshots of two pages in headless Chromium (site/_screenshots/).
docs: sync system-deps ## build the documentation site into site/ (strict), check the API reference
	@NO_MKDOCS_2_WARNING=1 $(UV) run --locked mkdocs build --strict --quiet
	@$(UV) run --locked python tools/check_api_docs.py
	@$(UV) run --locked python docs/scripts/screenshots.py

docs-serve: sync ## serve the documentation site on http://127.0.0.1:8000/ with live reload
	@NO_MKDOCS_2_WARNING=1 $(UV) run --locked mkdocs serve

bench: sync $(addprefix bench-,$(BENCHES)) ## run every benchmark; results in bench-results/

$(addprefix bench-,$(filter-out streaming,$(BENCHES))): bench-%: sync
	@$(UV) run --locked python tools/bench/$*.py --out bench-results

# Its split peer is a PySpark job: the workspace's `spark` group (~500 MB, not in `dev`).
bench-streaming:
	@$(UV) sync --locked --quiet --compile-bytecode --group spark
	@$(UV) run --locked --group spark python tools/bench/streaming.py --out bench-results
