"""An MLE trains a model from the page, watches its progress bar finish and reads the model's
report, in a real Chromium, with a real Celery worker (solo pool, in a thread of this process)
consuming the task from the configured broker.

Set CONCORD_SCREENSHOTS=1 to also save docs/screenshots/model.png (the top of the model page: the
figures, both plots and the gap-to-HLP table); by default the test writes nothing into the repository.
"""

import os
import re
import threading
from pathlib import Path
from uuid import uuid4

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import PASSWORD, log_in

pytestmark = [pytest.mark.e2e, pytest.mark.celery]
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "model.png"


@pytest.fixture
def demo(transactional_db):
    from annotation.services.demo import create_demo

    project, _ = create_demo(password=PASSWORD, simulate_labelers=3, log=lambda *args: None)
    return project


@pytest.fixture
def training_queue(settings):
    """A queue of this test's own, so no other worker on the same broker takes its task."""
    queue = f"concord-e2e-training-{uuid4().hex[:8]}"
    settings.CONCORD_TRAINING = {**settings.CONCORD_TRAINING, "QUEUE": queue}
    return queue


@pytest.fixture
def one_request_at_a_time(monkeypatch):
    """On an in-memory SQLite test database the live server's request threads share one connection,
    which breaks when the page loads a gallery of thumbnails at once ("bad parameter or other API
    misuse"); there, handle one request at a time. PostgreSQL (CI) needs nothing."""
    from django.core.handlers.wsgi import WSGIHandler
    from django.db import connection

    if connection.vendor != "sqlite" or not connection.is_in_memory_db():
        return
    lock = threading.Lock()
    handle = WSGIHandler.__call__

    def serially(self, environ, start_response):
        with lock:
            return handle(self, environ, start_response)

    monkeypatch.setattr(WSGIHandler, "__call__", serially)


def test_mle_trains_from_the_page_and_reads_the_model(page, base_url, demo, training_queue, one_request_at_a_time):
    from celery.contrib.testing.worker import start_worker

    from config.celery import app

    log_in(page, "mle")
    expect(page).to_have_url(f"{base_url}/")
    page.goto("/projects/digits/models/")
    expect(page.get_by_role("heading", name="Models", level=1)).to_be_visible()
    expect(page.get_by_test_id("current-model")).to_have_text("No current model")

    page.get_by_label("Logistic regression (scikit-learn)").check()
    page.get_by_role("button", name="Train").click()
    expect(page).to_have_url(f"{base_url}/projects/digits/models/")
    expect(page.locator(".message--success")).to_contain_text("has started")
    row = page.locator("tr[data-model]").first
    bar = row.locator("[data-progress] progress")
    expect(bar).to_be_visible()
    expect(row.locator("[data-progress-text]")).to_contain_text("Queued")  # no worker yet
    model_id = row.get_attribute("data-model")

    # The worker starts now, so the bar is seen moving from queued to done.
    with start_worker(app, perform_ping_check=False, pool="solo", queues=[training_queue], loglevel="WARNING"):
        expect(row.locator('[data-cell="status"]')).to_have_text("Ready", timeout=120_000)
    expect(row.locator("[data-progress-text]")).to_have_text("Done · 100%")
    assert bar.evaluate("el => el.value") == 1
    expect(row.locator('[data-cell="accuracy"]')).to_have_text(re.compile(r"^\d+\.\d%$"))

    row.get_by_role("link", name=model_id).click()
    expect(page).to_have_url(f"{base_url}/projects/digits/models/{model_id}/")
    expect(page.get_by_role("heading", name=f"Model {model_id}")).to_be_visible()
    expect(page.get_by_test_id("model-status")).to_have_text("Ready")
    expect(page.locator('[data-stat="accuracy"] .stat__value')).to_have_text(re.compile(r"^\d+\.\d%$"))
    heatmap = page.locator('[data-chart="confusion"] svg')
    expect(heatmap).to_be_visible()
    assert heatmap.locator("rect:has(title)").count() == 100  # 10 x 10 classes
    expect(page.locator('[data-chart="calibration"] svg')).to_be_visible()
    expect(page.locator('table[data-table="gap"] tbody tr')).to_have_count(3)  # ink = light, medium, heavy
    expect(page.locator('table[data-table="slices"] tbody tr')).to_have_count(3)
    gallery = page.locator('[data-gallery="train-confidently-wrong"] img')
    expect(gallery.first).to_be_visible()
    gallery.first.scroll_into_view_if_needed()
    expect(gallery.first).to_have_js_property("complete", True)
    assert gallery.first.evaluate("img => img.naturalWidth") > 0

    if os.environ.get("CONCORD_SCREENSHOTS") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.evaluate("window.scrollTo(0, 0)")
        page.wait_for_load_state("networkidle")
        # The headline figures, both plots and the gap-to-HLP table.
        page.screenshot(path=SCREENSHOT, full_page=True, clip={"x": 0, "y": 0, "width": 1280, "height": 1640})

    # Promote it from its page, confirming in the dialog: it becomes the project's current model.
    page.get_by_role("button", name="Promote to current").click()
    page.get_by_test_id("confirm-dialog").get_by_role("button", name="Promote").click()
    expect(page.get_by_test_id("current-badge")).to_be_visible()
    page.goto("/projects/digits/models/")
    expect(page.get_by_test_id("current-model")).to_have_text(model_id)
