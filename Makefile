# The README's two commands: `make run` and `make test`. Everything else here serves them.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# Django 6 needs Python >= 3.12: take the first interpreter on this machine that is new enough.
PYTHON_FOR_VENV := $(shell for p in python3.12 python3.13 python3 $$HOME/.pyenv/versions/3.12*/bin/python3 \
	/root/.pyenv/versions/3.12*/bin/python3 /usr/bin/python3.12; do \
	$$p -c 'import sys; sys.exit(sys.version_info[:2] < (3, 12))' 2>/dev/null && { echo $$p; break; }; done)
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint chromium clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@test -n "$(PYTHON_FOR_VENV)" || { echo "Concord needs Python 3.12 or newer (Django 6); none found." >&2; exit 1; }
	@test -x $(PY) || $(PYTHON_FOR_VENV) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $@

# Web server and Celery worker side by side; one Ctrl-C stops both.
run: $(VENV)/.installed
	$(PY) manage.py migrate --noinput
	$(PY) manage.py demo --if-empty --simulate-labelers 3
	@$(VENV)/bin/celery -A config worker --loglevel=INFO --concurrency=1 & worker=$$!; \
	trap 'kill $$worker 2>/dev/null; wait $$worker 2>/dev/null' EXIT INT TERM; \
	$(PY) manage.py runserver $(HOST):$(PORT)

# End-to-end tests drive Debian's Chromium; never a browser a tool downloads itself.
chromium:
	@command -v chromium >/dev/null || { \
		echo "Installing Debian's chromium for the end-to-end tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(PY) manage.py makemigrations --check --dry-run

test: $(VENV)/.installed chromium lint
	$(VENV)/bin/pytest

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
