# imgsearch: `make run` starts the app, `make test` runs the tests. Both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/imgsearch

# `make demo` runs on its own database and media folder so demo scenes never mix with your photos.
DEMO_ENV = IMGSEARCH_MODEL_PROFILE=demo IMGSEARCH_VAR_DIR=$(CURDIR)/var/demo MEDIA_ROOT=$(CURDIR)/var/demo/media

.PHONY: install models run dev web worker indexer demo migrate test lint clean

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

install: $(VENV)/.installed

migrate: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput --verbosity 0

# The production web server (imgsearch/gunicorn_conf.py: threads, a bounded PostgreSQL pool) and the
# development one (reloads on code changes, DEBUG on).
WEB_SERVER = HOST=$(HOST) PORT=$(PORT) $(PY) -m gunicorn -c imgsearch/gunicorn_conf.py imgsearch.wsgi
DEV_SERVER = DEBUG=true $(PY) manage.py runserver $(HOST):$(PORT)

# The web server, one django-q2 worker and the index writer together; Ctrl-C stops all three (each
# stops on the terminal's SIGINT; the trap sends SIGTERM too, for a kill of make, and waits for them).
# The start line is printed once the app answers requests. $(1): environment for all three,
# $(2): the web server.
define serve
	@trap 'kill $$web $$worker $$indexer 2>/dev/null; wait 2>/dev/null' EXIT INT TERM HUP; \
	$(1) $(PY) manage.py run_indexer & indexer=$$!; \
	$(1) $(PY) manage.py run_worker & worker=$$!; \
	$(1) $(2) & web=$$!; \
	$(PY) -m imgsearch.wait_until_serving http://$(HOST):$(PORT)/healthz $$web && \
	echo "imgsearch on http://$(HOST):$(PORT)/ (worker and indexer running too; Ctrl-C stops all)"; \
	wait $$web
endef

# Weights missing on first start: fetched now when the network allows, else a banner and the app
# starts anyway (uploads wait and are processed once the weights are in place).
models: install
	$(PY) manage.py fetch_models --if-missing

run: migrate models
	$(call serve,,$(WEB_SERVER))

dev: migrate models
	$(call serve,,$(DEV_SERVER))

# One process kind each, for a process manager (systemd, containers) that starts them separately.
web: install
	$(WEB_SERVER)
worker: install
	$(PY) manage.py run_worker
indexer: install
	$(PY) manage.py run_indexer

# Offline tour: the demo CLIP we trained + generated scenes for user demo / demo-password.
demo: install
	$(DEMO_ENV) $(PY) manage.py migrate --noinput
	$(DEMO_ENV) $(PY) manage.py collectstatic --noinput --verbosity 0
	$(DEMO_ENV) $(PY) manage.py load_demo
	$(call serve,$(DEMO_ENV),$(WEB_SERVER))

# Tests marked slow (real worker processes, killed and restarted services, the browser) are left out
# unless PYTEST_MARKERS says otherwise; CI runs everything with `make test PYTEST_MARKERS=`.
PYTEST_MARKERS ?= not slow
test: install
	DATABASE_URL=$(TEST_DATABASE_URL) $(PY) -m pytest -m "$(PYTEST_MARKERS)" $(PYTEST_ARGS)

# The style gate (pyproject.toml): lint, formatting, and types where they are checked.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) var .pytest_cache
