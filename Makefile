# The two commands a newcomer runs: `make demo` and `make test`. Both create .venv/ on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	# torch first, pinned to the CPU wheel: a bare `torch` would pull a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev,distributed,export,viz]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/pearl-robot demo

lint: $(STAMP)
	$(BIN)/ruff check pearl_robot tests benchmarks

# two pytest workers: much of the suite waits on real time (20 Hz loops, pty latency), so it halves the wall time
test: $(STAMP) lint
	CI=$${CI:-true} $(BIN)/python -m pytest -q -n 2 tests

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
