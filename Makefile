# The README's two commands: `make demo` and `make test`. Both set everything up from scratch.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-fast lab bench clean system-deps

# Build tools for llama-cpp-python (compiled from source once; pip caches the wheel afterwards).
system-deps:
	@command -v g++ >/dev/null && command -v make >/dev/null || \
	  { apt-get update && apt-get install -y --no-install-recommends g++ make; }

$(STAMP): pyproject.toml | system-deps
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	CMAKE_BUILD_PARALLEL_LEVEL=2 $(BIN)/python -m pip install -q -e '.[local,serve,lab,dev,team]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/llmops-lab demo

test: install
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

lab: install
	$(BIN)/jupyter lab notebooks/

bench: install
	$(BIN)/python benchmarks/overhead.py

clean:
	rm -rf $(VENV) .llmops notebooks/*.out.ipynb
