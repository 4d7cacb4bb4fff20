# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
SERVICES := $(BIN)/python scripts/services
PYTEST_ARGS ?=

.PHONY: install vectors demo test quality models lint typecheck compose-check compose-smoke browser services-up services-down faults clean lock audit bench schemas

# pip's output goes to $(PIP_LOG) and is shown only when it fails: a first run prints one line.
PIP_LOG := $(VENV)/pip.log
quiet_pip = mkdir -p $(VENV) && start=$$(date +%s) && printf '%s' "installing $(1) into $(VENV)… " \
	&& { $(2); } >$(PIP_LOG) 2>&1 \
	|| { echo failed; cat $(PIP_LOG); echo "install failed; pip's output: $(PIP_LOG)"; exit 1; } \
	&& echo "done in $$(($$(date +%s) - start))s"

$(STAMP): pyproject.toml
	@$(call quiet_pip,the project,$(PYTHON) -m venv $(VENV) && $(BIN)/pip install --upgrade pip \
		&& $(BIN)/pip install -e '.[dev]')
	@rm -f $(VENV)/.installed-* && touch $@

# Pretrained word vectors for `triage train --task` (classifiers/vectors.py): fetched once into
# $TRIAGE_CACHE, installed beside the models.
VECTORS := classifiers/vectors/glove-100d.npz
$(VECTORS): $(STAMP)
	$(BIN)/triage models vectors

vectors: $(VECTORS)

install: $(STAMP) $(VECTORS)

demo: $(STAMP)
	@$(BIN)/triage demo --serve

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy pipeline connectors classifiers dashboards flows

# compose.yaml is the production path; validate it with Debian's docker-compose (no engine needed).
compose-check:
	command -v docker-compose >/dev/null || { apt-get update -qq && apt-get install -y -qq docker-compose >/dev/null; }
	docker-compose -f compose.yaml config -q

# compose.yaml started for real (not part of `make test`: it builds images and takes minutes);
# needs dockerd running (as root) and docker-compose. See scripts/compose_smoke.py.
compose-smoke: $(STAMP)
	$(BIN)/python scripts/compose_smoke.py

# Browser tests drive Debian's Chromium through Playwright; never a browser Playwright downloads.
# The CJK fonts let the Chinese interface render in screenshots.
browser:
	{ command -v chromium && fc-list :lang=zh | grep -q .; } >/dev/null 2>&1 || { apt-get update -qq \
		&& apt-get install -y -qq chromium fonts-noto-cjk >/dev/null; }

# Starts the real Kafka broker and FerretDB on loopback, runs every suite against them, and
# stops them whatever the outcome.
test: lint typecheck compose-check browser audit $(VECTORS)
	$(SERVICES) build
	$(SERVICES) up || { $(SERVICES) down; exit 1; }
	. .services/env && $(BIN)/pytest $(PYTEST_ARGS); rc=$$?; $(SERVICES) down; exit $$rc

# Classifier quality on the public labelled sets in ../shared/data; writes docs/quality.*
quality: $(STAMP) $(VECTORS)
	$(BIN)/python bench/quality.py ../shared/data
	$(BIN)/python bench/trends_quality.py ../shared/data
	$(BIN)/python bench/similar_quality.py ../shared/data
	$(BIN)/python bench/urgency_quality.py

# The shipped model bundle, trained on the real sets in ../shared/data (scripts/build_models.py),
# registered as the packaged active version; docs/models.json gets its held-out figures.
# PERMISSIVE=1 leaves out the sets whose licence is research-only or unstated.
models: $(STAMP) $(VECTORS)
	nice -n 10 $(BIN)/python scripts/build_models.py ../shared/data $(if $(PERMISSIVE),--permissive)

# Throughput, latency and peer comparison on the real services (bench/throughput.py); not part
# of `make test`. Writes docs/performance.*; QUICK=1 runs 20,000 posts and only prints.
BENCH_STAMP := $(VENV)/.bench-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
BENCH_EXTRAS := .[dev,bench]
$(BENCH_STAMP): $(STAMP)
	@$(call quiet_pip,the bench extras,$(BIN)/pip install -e '$(BENCH_EXTRAS)')
	@rm -f $(VENV)/.bench-* && touch $@

bench: $(BENCH_STAMP)
	$(SERVICES) build
	$(SERVICES) up || { $(SERVICES) down; exit 1; }
	. .services/env && $(BIN)/python -m bench.throughput $(if $(QUICK),--quick); rc=$$?; $(SERVICES) down; exit $$rc

faults: $(STAMP)
	$(SERVICES) up || { $(SERVICES) down; exit 1; }
	. .services/env && $(BIN)/pytest -m faults $(PYTEST_ARGS); rc=$$?; $(SERVICES) down; exit $$rc

# The locked dependencies: exactly what `make install` resolved, for audits and reproducible builds.
# JSON Schema of each topic's records, from the pydantic models (docs/kafka.md points at them)
schemas: $(STAMP)
	$(BIN)/python -m pipeline.cli.schemas docs/schemas

lock: $(STAMP)
	$(BIN)/pip freeze --all --exclude-editable | grep -v '^pip==' > requirements.lock

# pip-audit on requirements.lock; fails on known vulnerabilities that have a fixed release.
audit: $(STAMP)
	$(BIN)/python scripts/audit_deps.py requirements.lock

services-up: $(STAMP)
	$(SERVICES) up

services-down: $(STAMP)
	$(SERVICES) down

clean:
	rm -rf $(VENV) .services .triage .pytest_cache .mypy_cache .ruff_cache
