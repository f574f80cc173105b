# Two commands do everything on a fresh machine: `make demo` (set up, render a sample video,
# process it end to end) and `make test` (set up, lint, run the test suite).
VENV ?= .venv
PYTHON ?= python3
# CPU-only PyTorch by default; on a CUDA machine: make demo CONSTRAINTS=constraints-gpu.txt
CONSTRAINTS ?= constraints-cpu.txt
BIN = $(VENV)/bin
STAMP = $(VENV)/.installed-$(notdir $(CONSTRAINTS))

.PHONY: install demo test test-fast serve bench gpu-check-prepare gpu-check
install: $(STAMP)

$(STAMP): pyproject.toml $(CONSTRAINTS) gameview_assets/core/viewer.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c $(CONSTRAINTS) -e ".[dev]"
	# The viewer page's Spark bundle and splat-transform, from npm (install time only).
	$(BIN)/python -m gameview_assets.core.viewer install
	touch $@

demo: $(STAMP)
	$(BIN)/gameview sample .gameview/sample.mp4
	$(BIN)/gameview process .gameview/sample.mp4 --preset preview

test: $(STAMP)
	./scripts/test-tools.sh
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

# The edit loop: every test but pipeline runs, real servers and real captures (conftest.py's
# FULL_LANE), in a few minutes on 2 cores. `make test` runs them all.
test-fast: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -m "not full_lane" -q

serve: $(STAMP)
	$(BIN)/gameview serve

bench: $(STAMP)
	# The repository root on the path: bench_sensor uses the tests' fake Supabase server.
	PYTHONPATH=. $(BIN)/python benchmarks/bench_pipeline.py
	PYTHONPATH=. $(BIN)/python benchmarks/bench_poses.py
	PYTHONPATH=. $(BIN)/python benchmarks/bench_train.py
	PYTHONPATH=. $(BIN)/python benchmarks/bench_quality.py
	PYTHONPATH=. $(BIN)/python benchmarks/bench_sensor.py
	PYTHONPATH=. $(BIN)/python benchmarks/bench_export.py
	PYTHONPATH=. $(BIN)/python benchmarks/bench_service.py

# The first GPU run in one command (docs/gpu.md): prepare .gpu-carry/ here, then run
# `make gpu-check OUT=DIR` on the GPU machine with its own python3 (no venv, no Dagster).
gpu-check-prepare: $(STAMP)
	PYTHONPATH=. $(BIN)/python benchmarks/gpu_check.py --prepare

OUT ?= gpu-check
gpu-check:
	PYTHONPATH=$(CURDIR)/.gpu-carry/site:$(CURDIR) TORCH_EXTENSIONS_DIR=/tmp/torch-ext \
		python3 benchmarks/gpu_check.py --out $(OUT)
