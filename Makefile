# Two commands do everything: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test install install-dev migrate demo lint format browser pdf-libs clean screenshots

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Stamp files re-install only when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/activate
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

# The ClickHouse event store's client and embedded engine (a large download):
# installed only when USAGE_EVENT_STORE=clickhouse asks for it.
$(VENV)/.installed-clickhouse: pyproject.toml | $(VENV)/.installed
	$(PY) -m pip install --quiet -e ".[clickhouse]"
	touch $@

CLICKHOUSE_DEPS := $(if $(filter clickhouse,$(USAGE_EVENT_STORE)),$(VENV)/.installed-clickhouse)

migrate: install $(CLICKHOUSE_DEPS)
	$(PY) manage.py migrate --noinput
	$(if $(CLICKHOUSE_DEPS),$(PY) manage.py ch_migrate)

demo: migrate
	$(PY) manage.py seed_demo --if-empty --url http://$(HOST):$(PORT)/

# Pango for WeasyPrint, which lays out statement PDFs: the Debian packages its
# documentation names (pip cannot install them).
PDF_LIBS := libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0
pdf-libs:
	@if command -v dpkg >/dev/null 2>&1 && ! dpkg -s $(PDF_LIBS) >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq $(PDF_LIBS) >/dev/null; \
		else echo "Pango is missing for statement PDFs: sudo apt-get install $(PDF_LIBS)"; fi; fi

# The demo runs over plain HTTP on localhost, so HTTPS-only cookies stay off.
run: pdf-libs demo
	$(PY) manage.py collectstatic --noinput -v0
	DJANGO_HTTPS=0 $(PY) manage.py serve --host $(HOST) --port $(PORT)

# Chromium for the browser tests: Debian's package (Playwright cannot download one here).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
		else echo "chromium is missing: sudo apt-get install chromium"; fi; }

test: install-dev browser pdf-libs $(CLICKHOUSE_DEPS)
	$(BIN)/pytest $(PYTEST_ARGS)

# PNGs of the main pages, from the demo data, for the README.
screenshots: install-dev browser demo
	$(PY) docs/screenshots.py

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) staticfiles test_db.sqlite3*
