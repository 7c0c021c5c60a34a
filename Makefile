# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Both create the virtualenv in .venv and install the project with its local stack first.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: install browser demo test lint unit bench bench-api up down status clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[local,dev,training,api]'
	@touch $@

demo: install browser  ## start the stack, load the data, run the pipeline round trip, stop the stack
	$(BIN)/python -m local.demo

browser: install  ## Debian's Chromium and its chromedriver, and axe-core, for the desk's browser tests
	@command -v chromedriver >/dev/null && command -v chromium >/dev/null || \
	  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; }
	@$(BIN)/python -c "from local.browser import axe_source; axe_source()"

test: install browser lint  ## the whole suite: unit, function, integration and browser tests
	$(BIN)/pytest

lint: install  ## style and types
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: install  ## the fetch benchmark: every contender on the same 5M-row table, both modes
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[local,dev,training,api,bench]'
	$(BIN)/python -m bench.fetch_bench

bench-api: install  ## the API load benchmark: Flask dev server vs gunicorn, and a model swap under load
	$(BIN)/python -m bench.api_load

unit: install
	$(BIN)/pytest tests/unit tests/functions

up: install
	$(BIN)/python -m local up

down:
	$(BIN)/python -m local down

status:
	$(BIN)/python -m local status

clean: down
	rm -rf .local $(VENV)
