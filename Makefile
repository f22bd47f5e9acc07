# Two entry points for a fresh machine: `make demo` (the embedded default) and `make test` (the suite).
# Both create .venv and install everything first: the pinned CPU torch before the package, so pip never
# resolves an unpinned torch (which would pull several GB of CUDA packages).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH := torch==2.13.0

.PHONY: install demo test lint bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(TORCH)
	$(BIN)/pip install -e '.[all,test]'
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/vixml demo

test: install
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts
	$(BIN)/pytest -q -m "slow or not slow"   # every test: bare pytest leaves the slow ones out (pyproject addopts)

bench: install
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache
