"""An MLE launches an active-learning cycle from the page and watches its four steps finish, in a
real Chromium with a real Celery worker (solo pool, in a thread of this process); then a labeler's
next item is one of the batch the cycle chose.

Saves a screenshot of the cycles page in pytest-playwright's output folder (test-results/<test>/,
gitignored); with CONCORD_SCREENSHOTS=1 also to docs/screenshots/cycles.png for the README.
"""

import os
import re
from pathlib import Path
from uuid import uuid4

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import PASSWORD, log_in

pytestmark = [pytest.mark.e2e, pytest.mark.celery]
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "cycles.png"
BATCH = 20


@pytest.fixture
def demo(transactional_db):
    from annotation.services import labeling
    from annotation.services.demo import create_demo

    project, _ = create_demo(password=PASSWORD, simulate_labelers=3, log=lambda *args: None)
    labeling.refresh_queue_state(project)  # the simulated labels were written outside the labeling service
    return project


@pytest.fixture
def cycle_queue(settings):
    """A queue of this test's own (cycles go to the training queue), so no other worker on the same
    broker takes its tasks; and no gold items served, so the labeler's next item is the batch's."""
    queue = f"concord-e2e-cycles-{uuid4().hex[:8]}"
    settings.CONCORD_TRAINING = {**settings.CONCORD_TRAINING, "QUEUE": queue}
    settings.CONCORD_LABELING = {**settings.CONCORD_LABELING, "GOLD_RATE": 0}
    return queue


def test_mle_launches_a_cycle_and_a_labeler_gets_its_batch(page, base_url, demo, cycle_queue, output_path):
    from celery.contrib.testing.worker import start_worker

    from active_learning.models import Cycle
    from config.celery import app

    log_in(page, "mle")
    expect(page).to_have_url(f"{base_url}/")
    page.goto("/projects/digits/")
    page.get_by_test_id("cycles-link").click()
    expect(page.get_by_role("heading", name="Active-learning cycles", level=1)).to_be_visible()
    expect(page.locator('[data-chart="learning-curve"]')).to_contain_text("No finished cycle yet.")

    expect(page.get_by_label("Strategy")).to_have_value("mix")
    expect(page.get_by_label("Mix weights")).to_be_visible()
    page.get_by_label("Batch size").fill(str(BATCH))
    page.get_by_label("Trainer").select_option("sklearn_logreg")
    page.get_by_role("button", name="Launch cycle").click()
    expect(page).to_have_url(f"{base_url}/projects/digits/cycles/")
    expect(page.locator(".message--success")).to_have_text(f"Cycle 1 launched: Mix (weighted), batch {BATCH}.")
    row = page.locator("tr[data-cycle-row]").first
    expect(row.locator('[data-cell="status"]')).to_have_text("Queued")  # no worker yet
    expect(row.locator("[data-progress-text]")).to_contain_text("Queued")
    expect(row.locator(".c-step.is-todo")).to_have_count(4)

    # The worker starts now, so the bar is seen moving from queued to done.
    with start_worker(app, perform_ping_check=False, pool="solo", queues=[cycle_queue], loglevel="WARNING"):
        expect(row.locator('[data-cell="status"]')).to_have_text("Done", timeout=180_000)
    cycle = Cycle.objects.select_related("model_version").get()
    assert cycle.status == "done", cycle.error
    expect(row.locator(".c-step.is-done")).to_have_count(4)
    expect(row.locator("[data-progress-text]")).to_have_text("Done · 100%")
    assert row.locator("progress").evaluate("el => el.value") == 1
    expect(row.locator('[data-cell="selected"]')).to_have_text(str(BATCH))
    expect(row.locator('[data-cell="accuracy"]')).to_have_text(re.compile(r"^\d+\.\d%$"))
    expect(row.locator('[data-cell="model"] a')).to_have_text(cycle.model_version.short_id)
    expect(row.get_by_role("button", name="Cancel cycle 1")).to_have_count(0)
    expect(page.get_by_test_id("active-notice")).to_have_count(0)
    expect(page.locator('[data-chart="learning-curve"] circle')).to_have_count(1)  # redrawn without a reload

    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=Path(output_path) / "cycles.png", full_page=True)
    if os.environ.get("CONCORD_SCREENSHOTS") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENSHOT, full_page=True)

    # The cycle's page: the batch by strategy and its items.
    row.get_by_role("link", name="Cycle 1").click()
    expect(page.get_by_role("heading", name="Cycle 1", level=1)).to_be_visible()
    expect(page.locator('[data-testid="batch"] li.thumb')).to_have_count(BATCH)
    counts = page.locator('table[data-table="strategies"] tbody tr td:nth-child(2)').all_inner_texts()
    assert sum(int(n) for n in counts) == BATCH
    last = page.locator('[data-testid="batch"] img').last
    last.scroll_into_view_if_needed()  # the thumbnails load lazily
    expect(last).to_have_js_property("complete", True)
    assert last.evaluate("img => img.naturalWidth") > 0
    # The default mix holds the error model: the page says what it learnt, or why it fell back.
    expect(page.get_by_test_id("error-model-own")).to_contain_text(
        re.compile(r"held-out predictions|fell back to margin")
    )
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=Path(output_path) / "cycle-detail.png", full_page=True)

    # A labeler's next item is one of the batch (the first in queue order: nothing comes before it).
    batch = list(cycle.selections.order_by("position").values_list("item_id", flat=True))
    page.context.clear_cookies()
    log_in(page, "labeler1")
    expect(page).to_have_url(f"{base_url}/")
    page.goto("/projects/digits/label/")
    image = page.locator("#lab-image")
    expect(image).to_have_attribute("src", re.compile(r"/items/\d+/image/"))
    shown = int(re.search(r"/items/(\d+)/image/", image.get_attribute("src")).group(1))
    assert shown in batch
    assert shown == batch[0]
