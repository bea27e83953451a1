# `make test` and `make demo` do every set-up step themselves, from a bare python3.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# torch/torchvision are pinned to the releases that install from this machine's disk
# (a CPU-capable build); asking pip for bare `torch` would download gigabytes.
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
# heavy tests are marked `slow` and left out of `make test` (the default suite stays under 10 minutes
# on 2 cores); `make test-slow` runs them
PYTEST_ARGS ?= -m "not slow"
# `make demo DEMO_ARGS=--overwrite` redoes a finished demo (from its cache)
DEMO_ARGS ?=

.PHONY: test test-slow test-min demo lint install clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet $(TORCH_PINS)
	$(PIP) install --quiet -e ".[dev,demo,distributed]" $(TORCH_PINS)
	touch $@

install: $(VENV)/.installed

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

test-slow: install
	$(PY) -m pytest -m slow

demo: install
	$(VENV)/bin/brainprobe demo $(DEMO_ARGS)

lint: install
	$(PY) -m ruff check src tests benchmarks

clean:
	rm -rf $(VENV) $(MIN_VENV) build *.egg-info src/*.egg-info

# The oldest releases pyproject.toml allows: a venv of its own with every runtime dependency pinned to
# its floor (.ci/min_dependencies.py writes the constraints; torch/torchvision stay at TORCH_PINS,
# the builds on this machine's disk), then the fast tests.
MIN_VENV ?= .venv-min
MIN_PYTEST_ARGS ?= -m "not slow"
$(MIN_VENV)/.installed: pyproject.toml .ci/min_dependencies.py
	test -x $(MIN_VENV)/bin/python || $(PYTHON) -m venv $(MIN_VENV)
	$(MIN_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(PYTHON) .ci/min_dependencies.py --skip torch torchvision > $(MIN_VENV)/constraints.txt
	$(MIN_VENV)/bin/python -m pip install --quiet $(TORCH_PINS) -c $(MIN_VENV)/constraints.txt
	$(MIN_VENV)/bin/python -m pip install --quiet -e ".[dev,demo]" $(TORCH_PINS) -c $(MIN_VENV)/constraints.txt
	touch $@

test-min: $(MIN_VENV)/.installed
	$(MIN_VENV)/bin/python -m pip freeze | grep -iE '^(numpy|scipy|scikit-learn|pandas|h5py|nibabel|nilearn|matplotlib|tqdm|pillow|joblib|torch|torchvision)=='
	$(MIN_VENV)/bin/python -m pytest $(MIN_PYTEST_ARGS)

# Benchmarks that compare with peers install those peers in their own environment only.
BENCH_VENV ?= .venv-bench
$(BENCH_VENV)/.installed: pyproject.toml
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet $(TORCH_PINS)
	$(BENCH_VENV)/bin/python -m pip install --quiet -e ".[dev,demo]" plenoptic $(TORCH_PINS)
	touch $@

.PHONY: bench bench-synth check-gpu
bench-synth: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python benchmarks/bench_synth.py

bench: install bench-synth
	$(PY) benchmarks/bench_rsa.py
	$(PY) benchmarks/bench_adversarial.py
	$(PY) benchmarks/bench_encoding.py
	$(PY) benchmarks/bench_encoding_cv.py
	$(PY) benchmarks/bench_neighbourhoods.py
	$(PY) benchmarks/bench_study.py
	$(PY) benchmarks/romp_recovery.py
	$(PY) benchmarks/bench_brain_synth.py
	$(PY) benchmarks/bench_import.py

# On a machine with CUDA: the whole suite with the shared test networks on the GPU (the
# cpu-vs-cuda comparisons in tests/robustness/test_devices.py run instead of skipping), then
# every benchmark; a CUDA run writes benchmarks/results/<name>.cuda.json beside the CPU figures.
check-gpu: install $(BENCH_VENV)/.installed
	@$(PY) -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 'check-gpu: torch sees no CUDA device here (torch ' + torch.__version__ + '); install a CUDA build via TORCH_PINS')"
	BRAINPROBE_TEST_DEVICE=cuda $(PY) -m pytest $(PYTEST_ARGS)
	$(PY) benchmarks/bench_rsa.py
	$(PY) benchmarks/bench_adversarial.py --device cuda
	$(PY) benchmarks/bench_encoding.py
	$(PY) benchmarks/bench_encoding_cv.py
	$(PY) benchmarks/bench_neighbourhoods.py
	$(PY) benchmarks/romp_recovery.py
	$(PY) benchmarks/bench_study.py
	$(PY) benchmarks/bench_brain_synth.py
	$(BENCH_VENV)/bin/python benchmarks/bench_synth.py
