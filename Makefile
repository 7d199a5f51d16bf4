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

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

# The site shows the outputs committed in the notebooks (execute_notebooks: off); nbval
# proves those outputs are what the code produces today.
# The Chinese edition is the same sources built again with the catalogues of locales/zh_CN
# (cebook/i18n.py), with -W -n too.
book: $(STAMP)  ## build the site into _build/html, the Chinese edition into _build/html/zh_CN
	$(JB) build . -W -n --keep-going
	$(PY) -m cebook.i18n build
	@echo "Open $(CURDIR)/_build/html/index.html in a browser (or run 'make serve');"
	@echo "the Chinese edition is $(CURDIR)/_build/html/zh_CN/index.html."

# After an English edit: re-extract the messages and merge them into locales/zh_CN/LC_MESSAGES
# (sphinx-intl); a changed message keeps its old translation, marked fuzzy, until revised.
# tests/test_i18n.py fails while any message is untranslated or fuzzy.
po: $(STAMP)  ## refresh the Chinese catalogues (locales/zh_CN) after editing the English
	$(PY) -m cebook.i18n po

# The student edition for teachers: solutions replaced by blank answer cells, outputs cleared;
# the checkers stay importable from cebook.exercises (installed in .venv with celib).
student: $(STAMP)  ## write the student edition (no solutions, no outputs) to _build/student
	$(PY) -m cebook.student book _build/student

notebooks: $(STAMP)  ## re-execute every chapter in place, refreshing the committed outputs
	$(VENV)/bin/jupyter nbconvert --to notebook --execute --inplace \
	    --ExecutePreprocessor.timeout=600 --ExecutePreprocessor.kernel_name=python3 $(NOTEBOOKS)

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

test-portable: $(STAMP)  ## nbval again, SIMD forced down, 1 thread (ISA=avx2 THREADS=N NB=...)
	$(if $(DISPATCH_$(ISA)),,$(error ISA must be baseline or avx2, not '$(ISA)'))
	env $(PORTABLE_ENV) $(PY) -m benchmarks.machine --expect $(ISA) --threads $(THREADS)
	env $(PORTABLE_ENV) $(PY) -m pytest $(XDIST) --dist loadfile --nbval --nbval-current-env \
	    -p no:cacheprovider $(NB)

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
	@echo "Serving _build/html on http://127.0.0.1:$(PORT)  (Ctrl-C to stop)"
	$(PYTHON) -m http.server --bind 127.0.0.1 --directory _build/html $(PORT)

bench: $(STAMP)  ## time celib against torch (python -m benchmarks.speed)
	$(PY) -m benchmarks.speed

accuracy: $(STAMP)  ## each method's error in ulps (python -m benchmarks.accuracy)
	$(PY) -m benchmarks.accuracy

clean:  ## remove the build and the test caches
	rm -rf _build .pytest_cache .hypothesis .coverage
