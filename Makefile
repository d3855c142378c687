# Two commands a newcomer needs: `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

# Python 3.12+ found by itself: versions on PATH that really run (a pyenv shim
# that is not activated fails the probe), then pyenv's own installs.
FIND_PYTHON = for p in $$PYTHON python3.13 python3.12 python3 \
	$$HOME/.pyenv/versions/3.13*/bin/python3 $$HOME/.pyenv/versions/3.12*/bin/python3 \
	/usr/local/bin/python3.1[2-9] /usr/bin/python3.1[2-9]; do \
	[ -n "$$p" ] && "$$p" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null \
	&& { command -v "$$p" || echo "$$p"; } && break; done

.PHONY: help install run test lint browser-deps

help:
	@echo "make run    install, migrate, load the demo, serve on http://127.0.0.1:8000 with a qcluster"
	@echo "make test   install and run the whole suite on PostgreSQL"
	@echo "make lint   ruff, the import contracts (import-linter) and the migrations check"

$(VENV)/.installed: pyproject.toml uv.lock
	@py="$$($(FIND_PYTHON))"; \
	if [ -z "$$py" ]; then echo "No Python 3.12+ found. Install Python 3.12 or newer (e.g. 'pyenv install 3.12' or your distribution's python3.12) or set PYTHON=/path/to/python3.12." >&2; exit 1; fi; \
	if [ ! -x $(PY) ] || ! $(PY) -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then \
		echo "Creating $(VENV) with $$py"; rm -rf $(VENV); "$$py" -m venv $(VENV); fi
	@$(PY) -m pip install -q --disable-pip-version-check uv==0.13.8
	$(UV) sync --frozen --inexact --python $(PY)
	@touch $@

install: $(VENV)/.installed

run: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo
	@echo "Dashboard: http://127.0.0.1:8000/  (users and passwords: see README)"
	@trap 'kill 0' INT TERM EXIT; \
	$(PY) manage.py qcluster & \
	$(PY) manage.py runserver 127.0.0.1:8000 & \
	wait

# The suite runs on PostgreSQL: DATABASE_URL, or a local server. The whole
# suite runs in two pytest-xdist processes (each its own test database; most
# tests wait on PostgreSQL, a qcluster or Chromium, so two halve the time on
# two cores); a part of it (PYTEST_ARGS) runs in one, so `-s` prints.
ifeq ($(strip $(PYTEST_ARGS)),)
PYTEST_WORKERS ?= 2
else
PYTEST_WORKERS ?= 0
endif
test: export DATABASE_URL ?= postgres://$(shell id -un)@127.0.0.1:5432/sagaflow
test: install browser-deps
	@$(PY) -m tests.dbcheck
	$(PY) -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

# The browser tests drive Debian's chromium through the playwright package
# (never `playwright install`); installed here only when it is missing.
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ]; then apt-get update && apt-get install -y chromium; \
		elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo apt-get update && sudo apt-get install -y chromium; \
		else echo "The browser tests need Chromium: run 'sudo apt-get install -y chromium' (Debian/Ubuntu)." >&2; fi; }

# Style, the import contracts of pyproject.toml ([tool.importlinter]: imports go
# one way, dashboard → approvals → sagas) and migrations that match the models.
# Without DATABASE_URL the migrations check runs on the embedded SQLite default.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-logo
	$(PY) manage.py makemigrations --check --dry-run
