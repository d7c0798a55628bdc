# Two entry points for a fresh machine (see README):
#   make demo   set up, then run the embedded default suite (offline, CPU, minutes) and report
#   make test   set up, then run the test suite and the example plugin package's tests and
#               suite (what CI runs; see scripts/test.sh)
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test bench
setup:
	@bash scripts/setup.sh

demo: setup
	$(VENV)/bin/harness run suites/demo.yaml
	$(VENV)/bin/harness report --experiment demo

test: setup
	@VENV=$(VENV) bash scripts/test.sh

bench: setup
	$(PY) benchmarks/di_stats.py
	$(PY) benchmarks/di_null.py
	$(PY) benchmarks/diffusion_suite.py
	$(PY) benchmarks/autoregressive_suite.py
	$(PY) benchmarks/autoregressive_suite.py --proportioned
	$(PY) benchmarks/chance_bands.py
	$(PY) benchmarks/executor.py
