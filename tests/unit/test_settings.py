"""Settings read the environment and fail loudly on bad values (checked in a fresh interpreter)."""

import json
import os
import re
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


COMPOSE = ROOT / "docker" / "compose.yaml"
STRONG_KEY = "k" + "7Gq2xVb9Lm4Zr8Tc1Ny6Pw3Hs5Jd0Fu" * 2  # long and varied enough for check --deploy


def settings_values(*names, **env):
    """The named settings as JSON, loaded in a fresh interpreter with this environment."""
    environment = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "DEBUG")}
    environment.update(env, DJANGO_SETTINGS_MODULE="config.settings")
    code = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        f"print(json.dumps({{n: getattr(s, n) for n in {list(names)!r}}}, default=str))"
    )
    result = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


HTTPS = [
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SECURE_PROXY_SSL_HEADER",
]


def test_production_https_defaults_when_debug_is_off():
    values = settings_values(*HTTPS, DEBUG="false", SECRET_KEY=STRONG_KEY)
    assert values == {
        "SECURE_SSL_REDIRECT": True,
        "SECURE_HSTS_SECONDS": 31_536_000,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_HSTS_PRELOAD": True,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_PROXY_SSL_HEADER": None,
    }


def test_plain_http_defaults_while_debugging():
    values = settings_values(*HTTPS)
    assert values["SECURE_SSL_REDIRECT"] is False
    assert values["SECURE_HSTS_SECONDS"] == 0
    assert values["SESSION_COOKIE_SECURE"] is False and values["CSRF_COOKIE_SECURE"] is False


def test_https_settings_come_from_the_environment():
    values = settings_values(
        *HTTPS,
        DEBUG="false",
        SECRET_KEY=STRONG_KEY,
        SECURE_SSL_REDIRECT="false",
        SECURE_HSTS_SECONDS="3600",
        SECURE_HSTS_INCLUDE_SUBDOMAINS="no",
        SECURE_HSTS_PRELOAD="off",
        SESSION_COOKIE_SECURE="0",
        CSRF_COOKIE_SECURE="false",
        SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO,https",
    )
    assert values == {
        "SECURE_SSL_REDIRECT": False,
        "SECURE_HSTS_SECONDS": 3600,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": False,
        "SECURE_HSTS_PRELOAD": False,
        "SESSION_COOKIE_SECURE": False,
        "CSRF_COOKIE_SECURE": False,
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
    }


def test_proxy_ssl_header_needs_a_header_and_a_value():
    result = load_settings(SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO")
    assert result.returncode != 0
    assert "SECURE_PROXY_SSL_HEADER='HTTP_X_FORWARDED_PROTO': give a header and its value" in result.stderr


def test_login_limits_come_from_the_environment():
    values = settings_values(
        "AXES_FAILURE_LIMIT", "AXES_COOLOFF_TIME", LOGIN_FAILURE_LIMIT="7", LOGIN_COOLOFF_SECONDS="90"
    )
    assert values == {"AXES_FAILURE_LIMIT": 7, "AXES_COOLOFF_TIME": "0:01:30"}
    assert settings_values("AXES_FAILURE_LIMIT", "AXES_COOLOFF_TIME") == {
        "AXES_FAILURE_LIMIT": 5,
        "AXES_COOLOFF_TIME": "0:15:00",
    }
    result = load_settings(LOGIN_FAILURE_LIMIT="0")
    assert result.returncode != 0
    assert "LOGIN_FAILURE_LIMIT and LOGIN_COOLOFF_SECONDS must be 1 or more" in result.stderr


def test_database_connections_persist_and_are_health_checked():
    pg = settings_values("DATABASES", DATABASE_URL="postgres://u@127.0.0.1:5432/x")["DATABASES"]["default"]
    assert (pg["CONN_MAX_AGE"], pg["CONN_HEALTH_CHECKS"]) == (60, True)
    tuned = settings_values("DATABASES", DATABASE_URL="postgres://u@127.0.0.1:5432/x", CONN_MAX_AGE="5")
    assert tuned["DATABASES"]["default"]["CONN_MAX_AGE"] == 5
    sqlite = settings_values("DATABASES")["DATABASES"]["default"]
    assert (sqlite["CONN_MAX_AGE"], sqlite["CONN_HEALTH_CHECKS"]) == (0, True)


def test_content_security_policy_allows_no_inline_or_foreign_script():
    csp = settings_values("SECURE_CSP", DEBUG="false", SECRET_KEY=STRONG_KEY)["SECURE_CSP"]
    assert csp["script-src"] == ["'self'"]
    assert csp["default-src"] == ["'self'"] and csp["object-src"] == ["'none'"]
    assert "'unsafe-inline'" not in csp["style-src"]
    assert csp["img-src"] == ["'self'"]


def compose_environment(**env):
    """The environment docker/compose.yaml gives web, worker and beat, with ${...} filled in from `env`."""
    import yaml

    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    assert {"web", "worker", "beat"} <= set(services)
    assert services["web"]["environment"] == services["beat"]["environment"] == services["worker"]["environment"]

    def fill(value):
        def one(match):
            name, op, word = match.group(1), match.group(2), match.group(3)
            if env.get(name):
                return env[name]
            if op == ":?":
                raise AssertionError(f"compose needs {name}: {word}")
            return word or ""

        return re.sub(r"\$\{(\w+)(?:(:[-?])([^}]*))?\}", one, str(value))

    return {name: fill(value) for name, value in services["web"]["environment"].items()}


def manage(*args, env):
    """manage.py with only this environment (what the containers get), not the test run's own."""
    environment = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    environment.update(env)
    return subprocess.run(  # noqa: S603 - our own interpreter and manage.py
        [sys.executable, "manage.py", *args], cwd=ROOT, env=environment, capture_output=True, text=True
    )


def test_check_deploy_is_clean_under_the_compose_environment():
    env = compose_environment(SECRET_KEY=STRONG_KEY)
    assert env["DEBUG"] == "false"
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_names_what_an_insecure_environment_lacks():
    env = compose_environment(SECRET_KEY=STRONG_KEY)
    env.update(SESSION_COOKIE_SECURE="false", SECURE_HSTS_SECONDS="0")
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode != 0
    assert "security.W012" in result.stderr and "security.W004" in result.stderr
