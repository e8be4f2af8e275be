# The two commands: `make run` and `make test`. Both set everything up from a fresh clone.
.DEFAULT_GOAL := help
SHELL := /bin/bash

VENV := .venv
PY := $(VENV)/bin/python
# Django 6.1 needs Python 3.12 or newer: take the first one found (pyenv's included).
PYTHON ?= $(shell for p in python3.14 python3.13 python3.12 python3 $$HOME/.pyenv/versions/3.1[2-9]*/bin/python3; do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null && { echo $$p; break; }; done)
# Where the browser tests save a screenshot of each page they visit.
SCREENSHOT_DIR ?= test-artifacts/screenshots
export SCREENSHOT_DIR

.PHONY: help run test lint format migrate clean

help:
	@echo "make run    start the dashboard, a Celery worker and the sandbox (Ctrl-C stops all)"
	@echo "make test   run the whole test suite (screenshots go to $(SCREENSHOT_DIR))"
	@echo "make lint   ruff (lint and format check) and mypy"

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@test -n "$(PYTHON)" || { echo "Python 3.12 or newer is needed (Django 6.1)."; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

# A fresh .env with random secrets, made once. Real environment variables still win over it.
.env: | $(VENV)/.installed
	$(PY) -m mokudash.make_env .env.example > .env
	@echo "Wrote .env with fresh DJANGO_SECRET_KEY and FIELD_ENCRYPTION_KEYS."

migrate: $(VENV)/.installed .env
	$(PY) manage.py migrate --noinput

run: migrate
	$(PY) manage.py demo_setup
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/honcho start

# axe-core, which the browser tests inject into each page (tests/browser/package.json pins it):
# installed again only when the lock file is newer than what node_modules holds. No npm: the
# accessibility tests skip (and fail in CI, whose .ci/run installs npm).
AXE := tests/browser/node_modules/axe-core/axe.min.js
$(AXE): tests/browser/package.json tests/browser/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error && touch $@; \
	else echo "npm is missing (apt-get install npm): the accessibility checks will not run."; fi

test: $(VENV)/.installed .env $(AXE)
	$(PY) manage.py makemigrations --check --dry-run
	$(PY) -m pytest $(PYTEST_ARGS)

# mypy's Django plugin imports the settings: debug ones and no .env, so that the result is the
# same on every machine, whatever its .env says (configuration: pyproject.toml).
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	DJANGO_ENV_FILE=/dev/null DJANGO_DEBUG=true $(VENV)/bin/mypy

format: $(VENV)/.installed
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) var test-artifacts .pytest_cache .mypy_cache tests/browser/node_modules
