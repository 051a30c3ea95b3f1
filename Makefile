# Make targets are loopml's only entry points. Each creates and uses .venv by itself.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DEMO_ARGS ?=
PYTEST_ARGS ?=

.PHONY: demo test docs lint bench install install-dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# The demo data ships inside the nannyml 0.13.1 wheel; it is installed without its
# dependencies and never imported (loopml only reads the parquet files it carries).
$(VENV)/.installed: $(BIN)/python pyproject.toml
	@echo "make: installing loopml and its dependencies into $(VENV) (a few minutes the first time)"
	$(BIN)/pip install -q -e .
	$(BIN)/pip install -q --no-deps nannyml==0.13.1
	touch $@

# Browser tests drive Debian's chromium (never a downloaded browser build).
$(VENV)/.installed-dev: $(VENV)/.installed
	@echo "make: installing the dev extra into $(VENV) (pytest, hypothesis, ruff, mypy, Playwright,"
	@echo "      MkDocs, fairlearn and the protocol clients the tests use)"
	$(BIN)/pip install -q -e '.[dev]'
	@command -v chromium >/dev/null || command -v /usr/bin/chromium >/dev/null || \
	  { echo "make: the browser tests need chromium; trying 'apt-get install chromium' (needs root)"; \
	    (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null 2>&1 || \
	    echo "warning: could not install chromium; browser tests will be skipped"; }
	@command -v nginx >/dev/null || test -x /usr/sbin/nginx || \
	  { echo "make: the replica tests need nginx; trying 'apt-get install nginx-light' (needs root)"; \
	    (apt-get update -qq && apt-get install -y -qq nginx-light) >/dev/null 2>&1 || \
	    echo "warning: could not install nginx; replica tests will be skipped"; }
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: install
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/loopml demo $(DEMO_ARGS)

test: install-dev
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 --timeout=300 $(PYTEST_ARGS)

# The documentation site, built offline and strictly (a warning is an error) into site/.
docs: install-dev
	$(BIN)/mkdocs build --strict

lint: install-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

bench: install-dev
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk) >/dev/null
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache build site *.egg-info src/*.egg-info
