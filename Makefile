# The two commands of the README:  `make book`  and  `make test`.
PYTHON     ?= python3
VENV       ?= .venv
PROFILE    ?= quick
# torch is installed first, on its own line, so that a GPU machine can keep its own build:
#   make book TORCH_SPEC=   (empty: use whatever torch the environment already has)
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
PY         := $(VENV)/bin/python

.PHONY: book test setup chapters html browser clean help paper-session device-bundle device-session

help:
	@echo "make book   set up, execute every chapter under PROFILE=$(PROFILE), build the HTML"
	@echo "make test   set up, run the test suite (tiny profile, strict build, headless Chromium)"
	@echo "make paper-session CHAPTER=... DATA=/path/to/mnist MINUTES=150 [DEVICE=cuda] [OUT=dir]"
	@echo "            a budgeted share of a paper-profile run; packs models and logs into OUT if given"
	@echo "make device-bundle DATA=/path/to/mnist   (here) wheels and MNIST for a lent GPU machine, in .device/"
	@echo "make device-session CHAPTER=... MINUTES=8 OUT=\$$OUT   (there) paper-session on its GPU, offline"

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	@if [ -n "$(TORCH_SPEC)" ]; then $(PY) -m pip install --quiet $(TORCH_SPEC); fi
	$(PY) -m pip install --quiet -e ".[book,dev]"
	# torchattacks (AutoAttack, for cross-checking our attacks) pins requests~=2.25.1 in its metadata,
	# which conflicts with Sphinx; it runs with newer requests, so it is installed without its
	# dependencies (the ones it uses, torch, numpy, scipy and tqdm, are ours).
	$(PY) -m pip install --quiet --no-deps "torchattacks==3.5.1"
	# The DDRS and ANCER authors' packages, to cross-check our optimizers in the tests (test-only;
	# without their dependencies: the modules the tests import need only torch and scipy).
	$(PY) -m pip install --quiet --no-deps "ddsmoothing-python==1.0.0" "ancer-python==1.0.0"
	@touch $@

setup: $(VENV)/.installed

chapters: setup
	$(PY) -m georobust.book run --profile $(PROFILE)

html: setup
	$(PY) -m georobust.book build

book: chapters html

# Headless Chromium checks the built pages; installed from Debian's packages when missing.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	  else echo "note: headless Chromium not found (install the 'chromium' package); browser checks will be skipped"; fi; }

test: setup browser
	$(PY) -m pytest

clean:
	rm -rf _build book/chapters/*.ipynb book/figures/*/

# A budgeted share of a long paper-profile run (README: "A long run, a work session at a time").
# It stops cleanly after about MINUTES (exit 3 = not complete yet, which is not an error here) and
# leaves data/models/<chapter>/paper and data/results/<chapter>/paper ready to commit. With OUT set
# (a lent GPU machine's output folder) it also packs them into one file, OUT/paper-<chapter>.tar.gz,
# to bring back and unpack in the repository's root (`tar xzf paper-<chapter>.tar.gz`).
CHAPTER ?= certifying-in-practice
MINUTES ?= 150
DEVICE  ?= auto
DATA    ?= $(GEOROBUST_DATA)
OUT     ?=
paper-session: setup
	@test -n "$(DATA)" || { echo "set DATA=/path/to/mnist (the folder with the four IDX files)"; exit 2; }
	$(PY) -m georobust.book run --profile paper --chapter $(CHAPTER) -p data_root $(DATA) -p device $(DEVICE) \
	    --budget-minutes $(MINUTES) || test $$? -eq 3
	@if [ -n "$(OUT)" ]; then mkdir -p $(OUT) && \
	    tar czf $(OUT)/paper-$(CHAPTER).tar.gz $$(for d in models results; do \
	      [ -d data/$$d/$(CHAPTER)/paper ] && echo data/$$d/$(CHAPTER)/paper; done) && \
	    echo "packed into $(OUT)/paper-$(CHAPTER).tar.gz: unpack it in the repository's root"; fi

# A lent GPU machine has python3 with torch, numpy, scipy, matplotlib and sympy, but no network and
# none of the packages that execute a chapter (papermill, jupytext, ipykernel). Before the session,
# on a machine with the package registry, `make device-bundle DATA=/path/to/mnist` fills .device/
# (git-ignored, about 30 MB): those packages as wheels for the GPU machine's Python (DEVICE_PY,
# default 3.12, x86-64 Linux) and a copy of MNIST. On the GPU machine, with .device carried along,
#   make device-session CHAPTER=training-for-large-radii MINUTES=8 OUT=$OUT
# installs them offline into a virtual environment over that machine's own packages (its torch is
# kept), puts src/ on the path, and runs paper-session on the GPU from .device/mnist. The executed
# notebook is not needed there: the page is rendered here from the logs it brings back.
DEVICE_PY     ?= 3.12
DEVICE_PYTHON ?= python3
DEVICE_VENV   ?= /tmp/georobust-venv
DEVICE_PKGS   := "papermill==2.7.0" "jupytext==1.19.6" "ipykernel>=6"
device-bundle:
	@test -n "$(DATA)" || { echo "set DATA=/path/to/mnist (the folder with the four IDX files)"; exit 2; }
	mkdir -p .device/wheels .device/mnist
	$(PYTHON) -m pip download --quiet --only-binary=:all: --python-version $(DEVICE_PY) \
	    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
	    --dest .device/wheels $(DEVICE_PKGS) "aiohttp>=3.9"  # papermill needs aiohttp on Python 3.12 (a marker pip download misses)
	cp $(DATA)/*-ubyte* .device/mnist/
	@du -sh .device

device-session:
	@test -d .device/wheels || { echo "no .device/wheels: run make device-bundle first, and carry .device"; exit 2; }
	$(DEVICE_PYTHON) -m venv --system-site-packages $(DEVICE_VENV)
	$(DEVICE_VENV)/bin/python -m pip install --quiet --no-index --find-links .device/wheels $(DEVICE_PKGS)
	touch $(DEVICE_VENV)/.installed
	PYTHONPATH=$(CURDIR)/src $(MAKE) paper-session VENV=$(DEVICE_VENV) DATA=.device/mnist DEVICE=$(if $(filter auto,$(DEVICE)),cuda,$(DEVICE)) \
	    CHAPTER=$(CHAPTER) MINUTES=$(MINUTES) OUT=$(OUT)
