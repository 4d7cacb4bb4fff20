# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
SERVICES := $(BIN)/python scripts/services
PYTEST_ARGS ?=

.PHONY: install demo test quality lint typecheck compose-check services-up services-down faults clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/triage demo

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy pipeline connectors classifiers dashboards flows

# compose.yaml is the production path; validate it with Debian's docker-compose (no engine needed).
compose-check:
	command -v docker-compose >/dev/null || { apt-get update -qq && apt-get install -y -qq docker-compose >/dev/null; }
	docker-compose -f compose.yaml config -q

# Starts the real Kafka broker and FerretDB on loopback, runs every suite against them, and
# stops them whatever the outcome.
test: lint typecheck compose-check
	$(SERVICES) build
	$(SERVICES) up || { $(SERVICES) down; exit 1; }
	. .services/env && $(BIN)/pytest $(PYTEST_ARGS); rc=$$?; $(SERVICES) down; exit $$rc

# Classifier quality on the public labelled sets in ../shared/data; writes docs/quality.*
quality: $(STAMP)
	$(BIN)/python bench/quality.py ../shared/data
	$(BIN)/python bench/trends_quality.py ../shared/data

faults: $(STAMP)
	$(SERVICES) up || { $(SERVICES) down; exit 1; }
	. .services/env && $(BIN)/pytest -m faults $(PYTEST_ARGS); rc=$$?; $(SERVICES) down; exit $$rc

services-up: $(STAMP)
	$(SERVICES) up

services-down: $(STAMP)
	$(SERVICES) down

clean:
	rm -rf $(VENV) .services .triage .pytest_cache .mypy_cache .ruff_cache
