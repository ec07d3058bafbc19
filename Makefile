# Two entry points for a fresh machine: `make demo` and `make test`. Both create or reuse the
# virtual environment and install what they need.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
REF_VENV ?= .venv-tsbad
REF_STAMP := $(REF_VENV)/.installed-tsbad-1.5
DATA ?= ../shared/data
OUT ?= out
PYTEST_ARGS ?=

.PHONY: install reference-env browser demo serve ui test lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev,llm,f2a,stream,ui]"
	touch $(STAMP)

install: $(STAMP)

$(REF_STAMP): scripts/reference_env.sh
	bash scripts/reference_env.sh $(REF_VENV)

reference-env: $(REF_STAMP)

# The main job: the diagnosis graph on a real NAB series with the embedded model, offline.
demo: install
	ANOMALYGRAPH_DATA_ROOTS='["$(abspath $(DATA))"]' \
	$(BIN)/anomalygraph diagnose $(DATA)/NAB/data/realKnownCause/nyc_taxi.csv --out $(OUT)/demo --fresh

# The graphs of langgraph.json under the in-memory LangGraph API server, on 127.0.0.1 only, offline
# (no LangSmith tracing, no CLI analytics, no version check); open http://127.0.0.1:$(SERVE_PORT)/docs.
SERVE_PORT ?= 2024
serve: install
	ANOMALYGRAPH_DATA_ROOTS='["$(abspath $(DATA))"]' ANOMALYGRAPH_OUTPUT_DIR=$(abspath $(OUT))/serve \
	LANGSMITH_TRACING=false LANGGRAPH_CLI_NO_ANALYTICS=1 LANGGRAPH_NO_VERSION_CHECK=true \
	$(BIN)/langgraph dev --no-browser --host 127.0.0.1 --port $(SERVE_PORT) --config langgraph.json

# The browser test's Chromium: Debian's package (Playwright's own download cannot run here).
CHROMIUM := $(shell command -v chromium 2>/dev/null)
browser:
ifeq ($(CHROMIUM),)
	apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium
endif

# The web workspace on http://127.0.0.1:$(UI_PORT) over the same data roots, threads and settings.
UI_PORT ?= 8501
ui: install
	ANOMALYGRAPH_DATA_ROOTS='["$(abspath $(DATA))", "."]' \
	$(BIN)/anomalygraph ui --port $(UI_PORT)

test: install reference-env browser
	ANOMALYGRAPH_REFERENCE_PYTHON=$(abspath $(REF_VENV))/bin/python \
	ANOMALYGRAPH_DATA_ROOTS='["$(abspath $(DATA))", "."]' \
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) $(REF_VENV) $(OUT) .pytest_cache
