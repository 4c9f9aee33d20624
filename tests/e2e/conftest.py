"""End-to-end tests: Playwright drives Debian's Chromium against Django's live server.

Playwright never downloads a browser here: the tests launch `/usr/bin/chromium` (installed by
`make chromium`, which `make test` runs). Where it is missing they skip with a message saying how
to install it, except in CI (`CI=true`), where they fail.
"""

import contextlib
import io
import os
from pathlib import Path

# Playwright's sync API runs an event loop in the test thread; Django would otherwise refuse
# the ORM calls that test fixtures make from that thread.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")

import pytest

from tests.e2e.chromium import CHROMIUM, LAUNCH_ARGS, VIEWPORT

PASSWORD = "pw-for-tests-only"  # tests/conftest.py's make_user default


def pytest_collection_modifyitems(config, items):
    """Run the browser tests after all others.

    While Playwright's sync API is up (a session fixture), the main thread has a running asyncio
    loop: `asyncio.run()` fails there, and Django keeps a second set of database connections
    for that "async" context. Putting the browser tests last keeps every other test out of it.
    """
    items.sort(key=lambda item: item.get_closest_marker("e2e") is not None)


@pytest.fixture(scope="session")
def _close_db_connections_before_playwright():
    from django.db import connections

    connections.close_all()


@pytest.fixture(scope="session")
def playwright(_close_db_connections_before_playwright, playwright):
    """pytest-playwright's `playwright`, with Django's connections closed on both sides of it.

    Once the loop runs, Django opens new connections instead of the thread's own ones; a
    connection left open on either side would keep PostgreSQL from dropping the test database.
    """
    from django.db import connections

    yield playwright
    connections.close_all()


@pytest.fixture(scope="session")
def browser_type_launch_args():
    if not Path(CHROMIUM).exists():
        message = f"Debian's Chromium is missing at {CHROMIUM}: run `make chromium` (apt-get install chromium)."
        if os.environ.get("CI") == "true":
            pytest.fail(message)  # CI must run the browser tests, never skip them
        pytest.skip(message)
    return {**LAUNCH_ARGS, "args": list(LAUNCH_ARGS["args"])}


@pytest.fixture(scope="session")
def base_url(live_server):
    """Pages open relative URLs (`page.goto("/login/")`) against Django's live server."""
    return live_server.url


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": VIEWPORT}


@pytest.fixture
def page(page):
    # Fail in seconds, not Playwright's default 30 s, when something is missing; generous enough
    # for a first request that imports the URL modules on a busy 2-core machine.
    page.set_default_timeout(15_000)
    yield page
    # Before the database is flushed for the next test: stop the page's polling, then let the
    # requests the live server (or a worker) is still serving finish. One still holding row locks
    # when the flush's TRUNCATE starts deadlocks it, and every later test then fails.
    with contextlib.suppress(Exception):  # a page that crashed or closed has nothing left to stop
        page.goto("about:blank")
    _wait_for_other_sessions_to_go_idle()


def _wait_for_other_sessions_to_go_idle(timeout_s=20.0):
    """Wait until no other session on the test database is running a statement or sits inside a
    transaction (PostgreSQL only; SQLite serialises writers anyway)."""
    import time

    from django.db import connection

    if connection.vendor != "postgresql":
        return
    deadline = time.monotonic() + timeout_s
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND state IS NOT NULL AND state <> 'idle'"
            )
            if cursor.fetchone()[0] == 0:
                return
            time.sleep(0.05)


def png_bytes(size=64, seed=0):
    """A small real PNG: a dark diagonal stroke on a light background."""
    from PIL import Image, ImageDraw

    image = Image.new("L", (size, size), 235)
    draw = ImageDraw.Draw(image)
    offset = (seed * 7) % (size // 2)
    draw.line([(offset, 4), (size - 4, size - offset - 4)], fill=20, width=size // 8)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def add_image_item(project, external_id, split="train", seed=0, **fields):
    """An item with a real PNG image and thumbnail written into MEDIA_ROOT."""
    from django.core.files.base import ContentFile

    from annotation.models import Item

    item = Item(project=project, external_id=external_id, split=split, width=64, height=64, **fields)
    data = png_bytes(seed=seed)
    item.image.save(f"{external_id}.png", ContentFile(data), save=False)
    item.thumbnail.save(f"{external_id}.png", ContentFile(data), save=False)
    item.save()
    return item


def log_in(page, username, password=PASSWORD):
    """Log in through the form like a person: type, then press Enter."""
    page.goto("/login/")
    page.get_by_label("Username").press_sequentially(username)
    page.get_by_label("Password").press_sequentially(password)
    page.get_by_label("Password").press("Enter")
