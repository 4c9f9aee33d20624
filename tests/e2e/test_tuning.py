"""An MLE launches a tuning run from the page, watches its trials come in and its progress bar end,
and follows the link to the registered model, in a real Chromium, with a real Celery worker (solo
pool, in a thread of this process) consuming the task from the configured broker.

Set CONCORD_SCREENSHOTS=1 to also save docs/screenshots/tuning.png (the run's page with its trials).
"""

import json
import os
import re
from pathlib import Path
from uuid import uuid4

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import PASSWORD, log_in

pytestmark = [pytest.mark.e2e, pytest.mark.celery]
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "tuning.png"


@pytest.fixture
def demo(transactional_db):
    """The demo with its 100 gold labels only: few labels, so trials are scored out of fold (K-fold)."""
    from annotation.services.demo import create_demo

    project, _ = create_demo(password=PASSWORD, simulate_labelers=0, log=lambda *args: None)
    return project


@pytest.fixture
def training_queue(settings):
    queue = f"concord-e2e-tuning-{uuid4().hex[:8]}"
    settings.CONCORD_TRAINING = {**settings.CONCORD_TRAINING, "QUEUE": queue}
    return queue


def test_mle_launches_a_tuning_run_and_follows_it_to_the_model(page, base_url, demo, training_queue):
    from celery.contrib.testing.worker import start_worker

    from config.celery import app
    from training.models import TuningRun

    log_in(page, "mle")
    expect(page).to_have_url(f"{base_url}/")
    page.goto("/projects/digits/models/")
    page.get_by_test_id("tuning-link").click()
    expect(page).to_have_url(f"{base_url}/projects/digits/tuning/")
    expect(page.get_by_role("heading", name="Tuning runs", level=1)).to_be_visible()

    form = page.get_by_test_id("tuning-form")
    form.locator('input[name="trainer"][value="sklearn_logreg"]').check()
    form.locator('select[name="search"]').select_option("halving_random")
    form.locator('input[name="budget_trials"]').fill("6")
    form.locator('input[name="budget_minutes"]').fill("5")
    form.locator('textarea[name="space"]').fill('{"C": {"low": 0.001, "high": 10, "log": true}, "image_size": 0}')
    form.get_by_role("button", name="Launch").click()
    expect(page.get_by_test_id("tuning-error")).to_contain_text("space: space.image_size must lie in")
    assert not TuningRun.objects.exists()
    expect(form.locator('select[name="search"]')).to_have_value("halving_random")  # the form keeps its choices

    space = {"C": {"low": 0.001, "high": 10, "log": True}, "image_size": 16, "max_iter": 200}
    page.get_by_test_id("tuning-form").locator('textarea[name="space"]').fill(json.dumps(space))
    page.get_by_test_id("tuning-form").get_by_role("button", name="Launch").click()
    expect(page).to_have_url(re.compile(rf"{base_url}/projects/digits/tuning/\d+/$"))
    expect(page.get_by_test_id("tuning-status")).to_have_text("Queued")
    expect(page.locator("[data-tuning-progress] [data-progress-text]")).to_contain_text("Queued")

    # The worker starts now, so the page is seen going from queued to done without a reload.
    with start_worker(app, perform_ping_check=False, pool="solo", queues=[training_queue], loglevel="WARNING"):
        expect(page.get_by_test_id("tuning-status")).to_have_text("Done", timeout=180_000)
    run = TuningRun.objects.get()
    rows = page.locator("[data-testid=trials] tbody tr")
    expect(rows).to_have_count(run.trials.count())
    assert (
        run.search == "halving_random" and run.trials.count() > 6
    )  # six candidates, then survivors at more iterations
    expect(page.locator("tr.tu-best")).to_have_count(1)
    expect(page.locator("[data-tuning-progress]")).to_have_count(0)
    link = page.get_by_test_id("tuning-model").get_by_role("link")
    expect(link).to_have_text(run.model_version.short_id)

    if os.environ.get("CONCORD_SCREENSHOTS") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.wait_for_load_state("networkidle")
        page.screenshot(path=SCREENSHOT, full_page=True, clip={"x": 0, "y": 0, "width": 1280, "height": 900})

    link.click()
    expect(page).to_have_url(f"{base_url}/projects/digits/models/{run.model_version.short_id}/")
    expect(page.get_by_test_id("model-status")).to_have_text("Ready")
