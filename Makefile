# Cross-Entropy, Executed: the two commands are `make book` and `make test`.
# Both create the virtual environment in .venv on first use (only python3 is needed).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
JB     := $(VENV)/bin/jupyter-book
NOTEBOOKS := $(sort $(wildcard book/*.ipynb))
PORT   ?= 8000
# Chapter 7 reads MNIST from $CELIB_MNIST_DIR; beside a checkout with ../shared/data/mnist (as in
# CI) use that folder, otherwise the loader downloads into ~/.cache/celib/mnist.
ifeq ($(origin CELIB_MNIST_DIR), undefined)
  ifneq ($(wildcard ../shared/data/mnist/t10k-labels-idx1-ubyte.gz),)
    export CELIB_MNIST_DIR := $(abspath ../shared/data/mnist)
  endif
endif
# Pytest runs on both cores; nbval needs --dist loadfile so one kernel runs one notebook.
XDIST  := -n 2

.PHONY: help venv book po student notebooks test lint test-unit test-notebooks test-portable \
        test-site test-browser linkcheck serve bench accuracy clean

# `make help` lists every target that has a `## ` comment on its line.
help:  ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "make %-15s %s\n", $$1, $$2}' \
	    $(MAKEFILE_LIST)

venv: $(STAMP)  ## create .venv from requirements.txt (the other targets do it on first use)

# torch's CPU build from PyTorch's index where it is reachable (cebook/torch_index.py), not
# PyPI's CUDA build with its GBs of nvidia packages; elsewhere the plain pin.
$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $$($(PYTHON) -m cebook.torch_index) -r requirements.txt
	touch $(STAMP)

# The site shows the outputs committed in the notebooks (execute_notebooks: off); nbval
# proves those outputs are what the code produces today.
# The Chinese edition is the same sources built again with the catalogues of locales/zh_CN
# (cebook/i18n.py), with -W -n too.
book: $(STAMP)  ## build the site into _build/html, the Chinese edition into _build/html/zh_CN
	$(JB) build . -W -n --keep-going
	$(PY) -m cebook.i18n build
	@echo "Read it with 'make serve', then open http://127.0.0.1:$(PORT)/ (中文版: /zh_CN/)."

# After an English edit: re-extract the messages and merge them into locales/zh_CN/LC_MESSAGES;
# a changed message keeps its old translation, marked fuzzy, and its old English (#| msgid)
# until revised. `python -m cebook.i18n todo` lists them; tests/test_i18n.py fails meanwhile.
po: $(STAMP)  ## refresh the Chinese catalogues (locales/zh_CN) after editing the English
	$(PY) -m cebook.i18n po

# The student edition for teachers: solutions replaced by blank answer cells, outputs cleared;
# the checkers stay importable from cebook.exercises (installed in .venv with celib). Also the
# Chinese edition (zh_CN/) and the answer keys (answers/).
student: $(STAMP)  ## write the student edition and answer keys (English, 中文) to _build/student
	$(PY) -m cebook.student book _build/student

# cebook/execute.py: nbclient, then no execution times and merged streams, so the diff shows
# only the outputs that changed.
notebooks: $(STAMP)  ## re-execute the chapters in place (NB=book/04_cross_entropy.ipynb: one)
	$(PY) -m cebook.execute $(if $(filter book,$(NB)),$(NOTEBOOKS),$(NB))

test: lint test-unit test-notebooks test-portable test-site  ## every test, as CI runs it

# ruff (E, F, W, B, UP, C90 at 100 columns) over the code and the notebooks' cells, mypy over
# celib, which ships py.typed; both configured in pyproject.toml.
lint: $(STAMP)  ## ruff over the code and the notebooks, mypy over celib and the benchmarks
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test-unit: $(STAMP)  ## celib's tests and doctests, with coverage
	$(PY) -m pytest $(XDIST) -m "not browser" --doctest-modules celib benchmarks tests \
	    --cov=celib --cov=benchmarks --cov-report=term

test-notebooks: $(STAMP)  ## nbval strict: every notebook's fresh outputs equal the committed ones
	$(PY) -m pytest $(XDIST) --dist loadfile --nbval --nbval-current-env \
	    -p no:cacheprovider book

# The portability pass: nbval once more, on a different machine in all but name. Every library's
# SIMD dispatch is forced down (ISA=baseline: none of AVX, AVX2 or AVX-512; ISA=avx2: AVX2 at
# most) and THREADS threads replace all the cores, so that a printed number that depends on the
# reader's CPU fails here and not on the reader's machine. `python -m benchmarks.machine --expect`
# first checks that the forcing took (the variables and what each one switches are listed in
# benchmarks/machine.py). NB= narrows the pass to some notebooks.
ISA     ?= baseline
THREADS ?= 1
NB      ?= book
DISPATCH_baseline := ATEN_CPU_CAPABILITY=default MKL_ENABLE_INSTRUCTIONS=SSE4_2 \
    ONEDNN_MAX_CPU_ISA=SSE41 OPENBLAS_CORETYPE=Nehalem \
    NPY_DISABLE_CPU_FEATURES="X86_V3 X86_V4 AVX512_ICL AVX512_SPR"
DISPATCH_avx2 := ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2 \
    OPENBLAS_CORETYPE=Haswell NPY_DISABLE_CPU_FEATURES="X86_V4 AVX512_ICL AVX512_SPR"
PORTABLE_ENV = $(DISPATCH_$(ISA)) OMP_NUM_THREADS=$(THREADS) MKL_NUM_THREADS=$(THREADS) \
    OPENBLAS_NUM_THREADS=$(THREADS) CELIB_NUM_THREADS=$(THREADS)

# numba (CELIB_BACKEND=numba or auto) compiles for the CPU it is named, with that CPU's features
# once NUMBA_CPU_FEATURES is set (the name alone leaves the host's features, AVX-512 included).
test-portable: NUMBA_baseline := NUMBA_CPU_NAME=nehalem NUMBA_CPU_FEATURES=-avx512f
test-portable: NUMBA_avx2 := NUMBA_CPU_NAME=haswell NUMBA_CPU_FEATURES=-avx512f
test-portable: $(STAMP)  ## nbval again, SIMD forced down, 1 thread (ISA=avx2 THREADS=N NB=...)
	$(if $(DISPATCH_$(ISA)),,$(error ISA must be baseline or avx2, not '$(ISA)'))
	env $(PORTABLE_ENV) $(NUMBA_$(ISA)) $(PY) -m benchmarks.machine --expect $(ISA) \
	    --threads $(THREADS)
	env $(PORTABLE_ENV) $(NUMBA_$(ISA)) $(PY) -m pytest $(XDIST) --dist loadfile --nbval \
	    --nbval-current-env -p no:cacheprovider $(NB)

test-site: book linkcheck test-browser  ## build both sites, check the links, drive them in Chromium

# Sphinx's linkcheck, with every external link ignored (_config.yml: linkcheck_ignore): it
# checks the links to local files. Cross-references are checked by the nitpicky build, and
# every link on every page (anchors included) by the browser tests.
linkcheck: $(STAMP)  ## Sphinx's linkcheck of the local links
	$(JB) build . --builder linkcheck

# Headless Chromium (Debian's chromium package) against _build/html served on 127.0.0.1;
# skipped without Chromium unless CELIB_REQUIRE_BROWSER=1 (as in CI).
test-browser: $(STAMP)  ## headless Chromium over the built site (needs make book)
	$(PY) -m pytest -m browser tests/browser -p no:cacheprovider --durations=0

serve:  ## serve _build/html on http://127.0.0.1:8000 (PORT=8080 for another port)
	@test -f _build/html/index.html || \
	    { echo "No site in _build/html: run 'make book' first."; exit 1; }
	@$(PYTHON) -c "import socket; socket.socket().bind(('127.0.0.1', $(PORT)))" 2>/dev/null || \
	    { echo "Port $(PORT) is in use (another 'make serve'?): stop it, or choose another" \
	        "port with 'make serve PORT=8080'."; exit 1; }
	@echo "Serving _build/html on http://127.0.0.1:$(PORT)  (Ctrl-C to stop)"
	$(PYTHON) -m http.server --bind 127.0.0.1 --directory _build/html $(PORT)

# ARGS= passes options through, e.g. make bench ARGS=--quick, make accuracy ARGS=--cases.
bench: $(STAMP)  ## time celib against torch (python -m benchmarks.speed; ARGS=--quick)
	$(PY) -m benchmarks.speed $(ARGS)

accuracy: $(STAMP)  ## each method's error in ulps (python -m benchmarks.accuracy; ARGS=--quick)
	$(PY) -m benchmarks.accuracy $(ARGS)

clean:  ## remove the build and the test caches
	rm -rf _build .pytest_cache .hypothesis .coverage
