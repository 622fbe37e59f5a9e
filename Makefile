# The two commands of the README:  `make book`  and  `make test`.
PYTHON     ?= python3
VENV       ?= .venv
PROFILE    ?= quick
# torch is installed first, on its own line, so that a GPU machine can keep its own build:
#   make book TORCH_SPEC=   (empty: use whatever torch the environment already has)
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
PY         := $(VENV)/bin/python

.PHONY: book test setup chapters html browser clean help paper-session

help:
	@echo "make book   set up, execute every chapter under PROFILE=$(PROFILE), build the HTML"
	@echo "make test   set up, run the test suite (tiny profile, strict build, headless Chromium)"
	@echo "make paper-session CHAPTER=... DATA=/path/to/mnist MINUTES=150 [DEVICE=cuda] [OUT=dir]"
	@echo "            a budgeted share of a paper-profile run; copies models and logs to OUT if given"

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
# It stops cleanly after about MINUTES (exit 3 = not complete yet, which is not an error here),
# leaves data/models/<chapter>/paper and data/results/<chapter>/paper ready to commit and, with
# OUT set (a lent GPU machine's output folder), copies them there to bring them back.
CHAPTER ?= certifying-in-practice
MINUTES ?= 150
DEVICE  ?= auto
DATA    ?= $(GEOROBUST_DATA)
OUT     ?=
paper-session: setup
	@test -n "$(DATA)" || { echo "set DATA=/path/to/mnist (the folder with the four IDX files)"; exit 2; }
	$(PY) -m georobust.book run --profile paper --chapter $(CHAPTER) -p data_root $(DATA) -p device $(DEVICE) \
	    --budget-minutes $(MINUTES) || test $$? -eq 3
	@if [ -n "$(OUT)" ]; then mkdir -p $(OUT) && for d in models results; do \
	    if [ -d data/$$d/$(CHAPTER)/paper ]; then mkdir -p $(OUT)/$$d/$(CHAPTER) && \
	    cp -r data/$$d/$(CHAPTER)/paper $(OUT)/$$d/$(CHAPTER)/; fi; done; echo "copied to $(OUT)"; fi
