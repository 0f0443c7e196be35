# Two commands do all the set-up on a fresh machine (see README):
#   make sample   installs everything and runs the batch on the bundled sample window
#   make test     installs everything and runs the tests
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
SAMPLE ?= data/raw/R7-sample
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export DVC_NO_ANALYTICS := 1
export MLFLOW_TRACKING_URI ?= sqlite:///$(CURDIR)/mlflow.db

.PHONY: install sample test test-fast bench clean

$(BIN)/.installed: pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	# the CPU build of torch first (from the machine's local wheel), or pip pulls a multi-GB CUDA build
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -c requirements.lock -e ".[dev]"
	touch $@

install: $(BIN)/.installed

sample: install
	$(BIN)/opinions run $(SAMPLE)

test: install
	bash scripts/with_test_postgres.sh $(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

bench: install
	$(BIN)/python benchmarks/bench_batch.py

clean:
	rm -rf outputs mlflow.db mlartifacts models/default review.db

# Install on an isolated PC (LGWAN, no network): docs/INSTALL_OFFLINE.md.
#   make wheelhouse        on a networked machine: every wheel needed (torch CPU, requirements.lock, the
#                          project's own) into $(WHEELHOUSE)/, checked to resolve on its own
#   make install-offline   on the isolated PC: a fresh venv ($(OFFLINE_VENV)) from $(WHEELHOUSE)/ only
#   make test-offline      builds (or reuses) the wheelhouse, installs it under `unshare -n`, runs the sample
WHEELHOUSE ?= wheelhouse
OFFLINE_VENV ?= $(VENV)
.PHONY: wheelhouse install-offline test-offline

wheelhouse:
	PY=$(PY) bash scripts/build_wheelhouse.sh $(WHEELHOUSE)

install-offline:
	bash scripts/install_offline.sh --wheelhouse $(WHEELHOUSE) --venv $(OFFLINE_VENV)

test-offline: install
	OPINIONS_TEST_OFFLINE=1 $(if $(wildcard $(WHEELHOUSE)/BUILD_INFO.txt),OPINIONS_WHEELHOUSE=$(abspath $(WHEELHOUSE))) $(BIN)/python -m pytest -q -s -m slow tests/test_offline_install.py
