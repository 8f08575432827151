# IFT: two commands on a fresh machine.
#   make book   environment, data, training, every chapter executed with papermill, the HTML site
#   make test   the test suite (what CI runs)
SHELL := /bin/bash
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROFILE ?= cpu
NB ?=
PARAMS ?=
FMNIST_DEB := /usr/share/datasets/fashion-mnist

.PHONY: book test env data browser chapter student parameters clean-book lock bench gpu-check help

help:
	@echo "make book     build the whole book (env, data, training, notebooks, HTML) [PROFILE=$(PROFILE)]"
	@echo "make test     run the test suite"
	@echo "make chapter NB=notebooks/04_long_tail.py PARAMS='-p n_models 20'   rerun one chapter, rebuild the site"
	@echo "make parameters NB=notebooks/04_long_tail.py   the chapter's parameters (names, types, defaults)"
	@echo "make student  the student edition (student notebooks, no exercise solutions) in _build/student/html"
	@echo "make bench    run the benchmarks"
	@echo "make gpu-check   on a CUDA machine: the GPU tests and the GPU benchmark (scripts/gpu_check.sh)"

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --no-cache-dir --upgrade pip
	$(BIN)/python -m pip install -q --no-cache-dir -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (ift)" >/dev/null
	touch $@

env: $(STAMP)

# Fashion-MNIST: the Debian package where we may install it (root on Debian), else torchvision's download.
# CIFAR-10 (PROFILE=paper only): torchvision's download, skipped when the files are already there.
data: env
	@if [ -f $(FMNIST_DEB)/train-images-idx3-ubyte.gz ] || [ -f $(FMNIST_DEB)/train-images-idx3-ubyte ]; then \
	  echo "Fashion-MNIST: $(FMNIST_DEB)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  (apt-get install -y -q dataset-fashion-mnist || (apt-get update -q && apt-get install -y -q dataset-fashion-mnist)); \
	else \
	  $(BIN)/python -m ift_core.data fetch fashion_mnist; \
	fi
	@if [ "$(PROFILE)" = paper ]; then $(BIN)/python -m ift_core.data fetch cifar10; fi

# Headless Chromium for the site's browser test (Debian's package, driven by Playwright).
browser:
	@if ! command -v chromium >/dev/null && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  (apt-get install -y -q chromium || (apt-get update -q && apt-get install -y -q chromium)); \
	fi

book: env data
	$(BIN)/python scripts/build_book.py --profile $(PROFILE)

chapter: env data
	@test -n "$(NB)" || (echo "usage: make chapter NB=notebooks/<chapter>.py PARAMS='-p name value ...'"; exit 2)
	$(BIN)/python scripts/build_book.py --profile $(PROFILE) --only $(NB) $(PARAMS)

parameters: env
	@test -n "$(NB)" || (echo "usage: make parameters NB=notebooks/<chapter>.py"; exit 2)
	$(BIN)/python scripts/build_book.py --list-parameters $(NB)

# The student edition for a course: chapters as student notebooks, exercise pages without solutions.
student: env data
	$(BIN)/python scripts/build_book.py --profile $(PROFILE) --student

# scripts/run_tests.py: pytest, and a test process that dies (native crash, timeout) names its test.
test: env browser
	$(BIN)/python scripts/run_tests.py -q -n 2 --dist loadfile

bench: env data
	for f in benchmarks/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

# On a machine with a CUDA GPU: tests/test_gpu.py, then benchmarks/bench_gpu.py (logs in gpu-check/).
gpu-check: env data
	PY=$(BIN)/python bash scripts/gpu_check.sh gpu-check

# Re-resolve the pinned environment from requirements.in (maintainers only).
lock:
	rm -rf /tmp/ift-lock && $(PY) -m venv /tmp/ift-lock
	/tmp/ift-lock/bin/pip install -q -r requirements.in
	/tmp/ift-lock/bin/pip freeze --exclude-editable | grep -v '^ift-core' > requirements.lock

clean-book:
	rm -rf _build notebooks/_executed
