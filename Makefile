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

.PHONY: help venv book po student notebooks test test-unit test-notebooks test-portable test-site \
        test-browser linkcheck serve bench accuracy clean

help:
	@echo "make book       build the site into _build/html, its Chinese edition into _build/html/zh_CN"
	@echo "make po         refresh the Chinese catalogues (locales/zh_CN) after editing the English"
	@echo "make test       run every test: celib, doctests, notebooks (nbval, twice), site, links, browser"
	@echo "make test-portable   nbval with SIMD dispatch forced down and 1 thread; ISA=avx2, THREADS=N,"
	@echo "                     NB=book/08_calibration.ipynb narrow it"
	@echo "make notebooks  re-execute every chapter in place, refreshing the committed outputs"
	@echo "make serve      serve _build/html on http://127.0.0.1:$(PORT)"
	@echo "make bench      time celib against torch (python -m celib.bench)"
	@echo "make student    write the student edition (no solutions, no outputs) to _build/student"

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

# The site shows the outputs committed in the notebooks (execute_notebooks: off); nbval
# proves those outputs are what the code produces today.
# The Chinese edition is the same sources built again with the catalogues of locales/zh_CN
# (cebook/i18n.py), with -W -n too.
book: $(STAMP)
	$(JB) build . -W -n --keep-going
	$(PY) -m cebook.i18n build
	@echo "Open $(CURDIR)/_build/html/index.html in a browser (or run 'make serve');"
	@echo "the Chinese edition is $(CURDIR)/_build/html/zh_CN/index.html."

# After an English edit: re-extract the messages and merge them into locales/zh_CN/LC_MESSAGES
# (sphinx-intl); a changed message keeps its old translation, marked fuzzy, until revised.
# tests/test_i18n.py fails while any message is untranslated or fuzzy.
po: $(STAMP)
	$(PY) -m cebook.i18n po

# The student edition for teachers: solutions replaced by blank answer cells, outputs cleared;
# the checkers stay importable from cebook.exercises (installed in .venv with celib).
student: $(STAMP)
	$(PY) -m cebook.student book _build/student

notebooks: $(STAMP)
	$(VENV)/bin/jupyter nbconvert --to notebook --execute --inplace \
	    --ExecutePreprocessor.timeout=600 --ExecutePreprocessor.kernel_name=python3 $(NOTEBOOKS)

test: test-unit test-notebooks test-portable test-site

test-unit: $(STAMP)
	$(PY) -m pytest $(XDIST) -m "not browser" --doctest-modules celib tests \
	    --cov=celib --cov-report=term

test-notebooks: $(STAMP)
	$(PY) -m pytest $(XDIST) --dist loadfile --nbval --nbval-current-env \
	    -p no:cacheprovider book

# The portability pass: nbval once more, on a different machine in all but name. Every library's
# SIMD dispatch is forced down (ISA=baseline: none of AVX, AVX2 or AVX-512; ISA=avx2: AVX2 at
# most) and THREADS threads replace all the cores, so that a printed number that depends on the
# reader's CPU fails here and not on the reader's machine. `python -m celib._machine --expect`
# first checks that the forcing took (the variables and what each one switches are listed in
# celib/_machine.py). NB= narrows the pass to some notebooks.
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

test-portable: $(STAMP)
	$(if $(DISPATCH_$(ISA)),,$(error ISA must be baseline or avx2, not '$(ISA)'))
	env $(PORTABLE_ENV) $(PY) -m celib._machine --expect $(ISA) --threads $(THREADS)
	env $(PORTABLE_ENV) $(PY) -m pytest $(XDIST) --dist loadfile --nbval --nbval-current-env \
	    -p no:cacheprovider $(NB)

test-site: book linkcheck test-browser

# Sphinx's linkcheck, with every external link ignored (_config.yml: linkcheck_ignore): it
# checks the links to local files. Cross-references are checked by the nitpicky build, and
# every link on every page (anchors included) by the browser tests.
linkcheck: $(STAMP)
	$(JB) build . --builder linkcheck

# Headless Chromium (Debian's chromium package) against _build/html served on 127.0.0.1;
# skipped without Chromium unless CELIB_REQUIRE_BROWSER=1 (as in CI).
test-browser: $(STAMP)
	$(PY) -m pytest -m browser tests/browser -p no:cacheprovider --durations=0

serve:
	@test -f _build/html/index.html || { echo "No site in _build/html: run 'make book' first."; exit 1; }
	@echo "Serving _build/html on http://127.0.0.1:$(PORT)  (Ctrl-C to stop)"
	$(PYTHON) -m http.server --bind 127.0.0.1 --directory _build/html $(PORT)

bench: $(STAMP)
	$(PY) -m celib.bench

accuracy: $(STAMP)
	$(PY) -m celib.accuracy

clean:
	rm -rf _build .pytest_cache .hypothesis .coverage
