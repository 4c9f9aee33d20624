"""The production web server, started as docker/compose.yaml starts it: gunicorn with DEBUG off
against the test database, static files collected and served by WhiteNoise, behind a (simulated)
TLS proxy that sets X-Forwarded-Proto."""

import http.client
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
HTTPS = {"X-Forwarded-Proto": "https"}  # what the proxy in front adds


def compose_gunicorn_command(port):
    """The web service's gunicorn command line from docker/compose.yaml, on our port, one worker
    (so that the connection test's second request reaches the worker whose connection was cut)."""
    command = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())["services"]["web"]["command"]
    words = shlex.split(shlex.split(command)[-1].split("&&")[-1])
    assert words[0] == "gunicorn", command
    words[words.index("--bind") + 1] = f"127.0.0.1:{port}"
    words[words.index("--workers") + 1] = "1"
    return [shutil.which("gunicorn", path=str(Path(sys.executable).parent)), *words[1:]]


def database_url(settings_dict):
    if settings_dict["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{settings_dict['NAME']}"
    user = settings_dict["USER"] + (f":{settings_dict['PASSWORD']}" if settings_dict["PASSWORD"] else "")
    return f"postgres://{user}@{settings_dict['HOST']}:{settings_dict['PORT'] or 5432}/{settings_dict['NAME']}"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, port, log_path):
        self.port, self.log_path = port, log_path

    def get(self, path, headers=HTTPS):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            return response, response.read()
        finally:
            conn.close()

    def log(self):
        return self.log_path.read_text(errors="replace")[-3000:]


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker, tmp_path_factory):
    from django.db import connection

    tmp = tmp_path_factory.mktemp("gunicorn")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SECURE_", "DJANGO_"))}
    env.update(
        DEBUG="false",
        SECRET_KEY="gunicorn-test-" + "x9Qz" * 12,
        ALLOWED_HOSTS="127.0.0.1",
        SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO,https",
        DATABASE_URL=database_url(connection.settings_dict),
        STATIC_ROOT=str(tmp / "static"),
        MEDIA_ROOT=str(tmp / "media"),
        LOG_LEVEL="WARNING",
    )
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True
    )
    port = free_port()
    log_path = tmp / "gunicorn.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(  # noqa: S603 - the compose file's command line
            compose_gunicorn_command(port), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    server = Server(port, log_path)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, f"gunicorn stopped at start:\n{server.log()}"
            try:
                server.get("/login/")
                break
            except OSError:
                assert time.monotonic() < deadline, f"gunicorn did not answer in 90 s:\n{server.log()}"
                time.sleep(0.3)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_login_page_with_production_headers(server):
    from django.conf import settings
    from django.utils.csp import build_policy

    response, body = server.get("/login/")
    assert response.status == 200, server.log()
    assert b'<h1 id="login-title">Log in</h1>' in body
    csp = response.getheader("Content-Security-Policy")
    assert csp == build_policy(settings.SECURE_CSP)
    assert "script-src 'self';" in csp and "unsafe-inline" not in csp
    assert response.getheader("Strict-Transport-Security") == "max-age=31536000; includeSubDomains; preload"
    cookie = response.getheader("Set-Cookie")
    assert cookie.startswith("csrftoken=") and "; Secure" in cookie


def test_plain_http_is_redirected_to_https(server):
    response, _ = server.get("/login/", headers={})
    assert response.status == 301
    assert response.getheader("Location") == f"https://127.0.0.1:{server.port}/login/"


def test_static_file_is_served_by_whitenoise(server):
    response, body = server.get("/static/frontend/concord.css")
    assert response.status == 200, server.log()
    assert body == (ROOT / "frontend" / "static" / "frontend" / "concord.css").read_bytes()
    assert response.getheader("Content-Type").startswith("text/css")
    missing, _ = server.get("/static/frontend/no-such-file.css")
    assert missing.status == 404


def test_not_found_page_lists_no_routes(server):
    response, body = server.get("/no-such-page/")
    assert response.status == 404
    assert b"URLconf" not in body and b"api/v1/" not in body


@pytest.mark.django_db(transaction=True)
def test_a_dropped_database_connection_is_replaced(server):
    from django.db import connection
    from rest_framework.authtoken.models import Token

    from ..conftest import make_user

    if connection.vendor != "postgresql":
        pytest.skip("cuts a PostgreSQL connection; this run uses SQLite")
    token = Token.objects.create(user=make_user("gunicorn-user")).key
    headers = {**HTTPS, "Authorization": f"Token {token}"}
    first, _ = server.get("/api/v1/projects/", headers)
    assert first.status == 200, server.log()

    with connection.cursor() as cursor:  # as a database restart or a failover would
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        assert cursor.rowcount >= 1  # the worker's kept connection

    second, body = server.get("/api/v1/projects/", headers)
    assert second.status == 200, body[:500] + server.log().encode()
