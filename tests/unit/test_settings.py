"""Settings read the environment and fail loudly on bad values (checked in a fresh interpreter)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load_settings(**env):
    environment = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    environment.update(env, DJANGO_SETTINGS_MODULE="config.settings")
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.DATABASES['default']['ENGINE'], s.CELERY_BROKER_URL)"
    )
    return subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True
    )


def test_defaults_need_no_server():
    result = load_settings()
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["django.db.backends.sqlite3", "filesystem://"]


def test_postgres_and_redis_urls_are_used():
    result = load_settings(DATABASE_URL="postgres://u@127.0.0.1:5432/x", CELERY_BROKER_URL="redis://127.0.0.1:6379/0")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["django.db.backends.postgresql", "redis://127.0.0.1:6379/0"]


def test_unknown_database_scheme_fails_loudly():
    result = load_settings(DATABASE_URL="mongodb://localhost/x")
    assert result.returncode != 0
    assert "DATABASE_URL='mongodb://localhost/x': scheme 'mongodb' is not supported" in result.stderr


def test_unknown_broker_scheme_fails_loudly():
    result = load_settings(CELERY_BROKER_URL="kafka://localhost")
    assert result.returncode != 0
    assert "CELERY_BROKER_URL" in result.stderr and "'kafka' is not supported" in result.stderr


def test_secret_key_required_without_debug():
    result = load_settings(DEBUG="false", SECRET_KEY="")
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr


def test_bad_boolean_fails_loudly():
    result = load_settings(DEBUG="maybe")
    assert result.returncode != 0
    assert "DEBUG='maybe' is not a boolean" in result.stderr


def test_bad_number_fails_loudly():
    result = load_settings(CONCORD_IMPORT_MAX_IMAGE_PIXELS="lots")
    assert result.returncode != 0
    assert "CONCORD_IMPORT_MAX_IMAGE_PIXELS='lots' is not a whole number" in result.stderr
