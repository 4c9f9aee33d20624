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
# `make run` serves as production does, DEBUG off (no debug page lists the routes), but over plain
# HTTP on this machine: the HTTPS settings that default on without DEBUG are turned off here.
# `make run DEBUG=true` for Django's debug pages and live static files.
DEBUG ?= false
ALLOWED_HOSTS ?= 127.0.0.1,localhost,[::1]
RUN_ENV := DEBUG=$(DEBUG) ALLOWED_HOSTS='$(ALLOWED_HOSTS)' SECRET_KEY="$${SECRET_KEY:-$$(cat var/secret_key)}" \
	SECURE_SSL_REDIRECT=false SECURE_HSTS_SECONDS=0 SESSION_COOKIE_SECURE=false CSRF_COOKIE_SECURE=false
# Where the start-up announcement checks the web server listens.
READY_HOST := $(if $(filter 0.0.0.0 ::,$(HOST)),127.0.0.1,$(HOST))

.PHONY: run test lint chromium clean

# requirements-labelstudio.txt: Label Studio's converter, which the export tests check our files
# with, installed without its dependencies (the file says why).
$(VENV)/.installed: requirements.txt requirements-dev.txt requirements-labelstudio.txt
	@test -n "$(PYTHON_FOR_VENV)" || { echo "Concord needs Python 3.12 or newer (Django 6); none found." >&2; exit 1; }
	@test -x $(PY) || $(PYTHON_FOR_VENV) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-labelstudio.txt
	@touch $@

# Made once, readable by its owner only, reused by every later `make run`.
var/secret_key: | $(VENV)/.installed
	@mkdir -p var
	@umask 077 && $(PY) -c 'import secrets; print(secrets.token_urlsafe(50))' > $@.new && mv $@.new $@
	@echo "Generated a secret key in $@"

# Web server, Celery worker and Celery beat side by side; one Ctrl-C stops all three. The demo's
# passwords (first run only) are kept aside (var/, owner-only) and printed last, once the worker
# is ready and the web server answers, so they are not lost among the start-up lines. The reapers'
# minute-by-minute lines stay in var/worker.log (beat logs warnings only), off the terminal.
run: $(VENV)/.installed var/secret_key
	@set -eo pipefail; export $(RUN_ENV); \
	$(PY) manage.py migrate --noinput; \
	$(PY) manage.py collectstatic --noinput -v 0; \
	rm -f var/worker.log; (umask 077 && : > var/demo-users.txt); \
	PYTHONUNBUFFERED=1 $(PY) manage.py demo --if-empty --simulate-labelers 3 | tee var/demo-users.txt \
		| sed -u '/Demo users:/,$$d'; \
	$(VENV)/bin/celery -A config worker --loglevel=INFO --concurrency=1 \
		> >(tee var/worker.log | grep --line-buffered -v -E '\.reap(\[|\b)') 2>&1 & worker=$$!; \
	$(VENV)/bin/celery -A config beat --loglevel=WARNING -s var/celerybeat-schedule & beat=$$!; \
	{ for i in $$(seq 180); do \
		grep -qs ' ready\.' var/worker.log && \
		$(PY) -c "import socket; socket.create_connection(('$(READY_HOST)', $(PORT)), 2)" 2>/dev/null && break; \
		sleep 1; done; \
	  echo; echo "Concord is serving http://$(HOST):$(PORT)/ (DEBUG=$(DEBUG)); Ctrl-C stops the server, worker and beat."; \
	  grep -q 'Demo users:' var/demo-users.txt && sed -n '/Demo users:/,$$p' var/demo-users.txt || \
		echo "Demo passwords were printed on the first run; \`$(PY) manage.py changepassword mle\` sets a new one."; \
	  rm -f var/demo-users.txt; } & announce=$$!; \
	trap 'kill $$announce $$beat $$worker 2>/dev/null; wait $$worker $$beat 2>/dev/null; rm -f var/demo-users.txt' \
		EXIT INT TERM; \
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
