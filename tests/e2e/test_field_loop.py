"""The field loop in a real Chromium: an MLE publishes a bundle to canary, simulated devices (the
device runner's Bundle, over HTTP to the live server) send telemetry that drifts, the monitoring
page shows the alert, and a labeler's next item is a field item.

The MLE publishes on the devices page (deployment/pages.py) and sets the canary share to 100 %.

Set CONCORD_SCREENSHOTS=1 to also save docs/screenshots/monitoring.png.
"""

import os
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.conftest import make_user
from tests.e2e.conftest import log_in
from tests.integration.field_bundle import trained_export

pytestmark = [pytest.mark.e2e]
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "monitoring.png"
WINDOW = 100


@pytest.fixture
def loop(transactional_db, settings):
    from annotation.models import Membership, ProjectTuning
    from annotation.services.projects import create_project

    settings.CONCORD_MONITORING = {**settings.CONCORD_MONITORING, "WINDOW": WINDOW, "ALPHA": 0.001}
    project = create_project(
        slug="birds", name="Birds", data_kind="image", classes=["crow", "dove", "owl"], ambiguity_classes=["unclear"]
    )
    ProjectTuning.objects.filter(project=project).update(gold_rate=0.0)  # the next item is never a gold draw
    mle, labeler = make_user("mle"), make_user("lab1")
    Membership.objects.create(user=mle, project=project, role="mle")
    Membership.objects.create(user=labeler, project=project, role="labeler")
    export = trained_export(project, settings)
    return project, export


def test_published_bundle_drifts_the_page_alerts_and_the_labeler_gets_a_field_item(page, base_url, loop, settings):
    # The queue serves a gold item instead of the top entry at GOLD_RATE (10 %) by chance: off here,
    # so the first item shown is the queue's top one.
    settings.CONCORD_LABELING = {**settings.CONCORD_LABELING, "GOLD_RATE": 0.0}
    from annotation.models import Assignment, QueueEntry
    from deployment.models import Channel
    from deployment.monitoring_simulation import run

    project, export = loop
    log_in(page, "mle")
    expect(page).to_have_url(f"{base_url}/")
    page.goto(f"/projects/{project.slug}/")
    page.get_by_test_id("devices-link").click()
    canary = page.get_by_test_id("channel-canary")
    canary.locator('select[name="export"]').select_option(str(export.pk))
    canary.get_by_role("button", name="Publish").click()
    canary = page.get_by_test_id("channel-canary")
    expect(canary.get_by_test_id("bundle")).to_contain_text(export.model_version.short_id)
    canary.locator('input[name="share"]').fill("100")
    canary.get_by_role("button", name="Set share").click()
    expect(page.get_by_test_id("channel-canary").get_by_test_id("share")).to_contain_text("100%")
    assert Channel.objects.get(project=project, name="canary").export_id == export.pk

    page.goto(f"/projects/{project.slug}/monitoring/")
    expect(page.get_by_text("No tested window yet.").first).to_be_visible()

    figures = run(
        project,
        url=base_url,
        channel="canary",
        n_devices=2,
        stable=200,
        drift=400,
        batch=50,
        sample_rate=0.3,
        seed=1,
        control=False,
        log=lambda *args: None,
    )
    assert figures["detected"], figures

    page.goto(f"/projects/{project.slug}/monitoring/")
    # one alert for the channel (all its devices), and one per device that drifted on its own
    alerts = page.get_by_test_id("drift-alert")
    expect(alerts.filter(has_not_text="device")).to_have_count(1)
    expect(alerts.filter(has_not_text="device")).to_contain_text("Drift on canary")
    expect(page.locator('[data-testid="chart-evidence"] circle[data-alarm="1"]').first).to_be_attached()
    if os.environ.get("CONCORD_SCREENSHOTS") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENSHOT, full_page=True)
    page.get_by_test_id("channel-canary").click()
    expect(page).to_have_url(f"{base_url}/projects/{project.slug}/monitoring/canary/")
    expect(page.get_by_test_id("drift-alert").filter(has_not_text="device")).to_have_count(1)
    page.goto(f"/projects/{project.slug}/")
    expect(page.get_by_test_id("drift-banner")).to_contain_text("canary")

    # the labeler's next item is the top field item
    top = QueueEntry.objects.filter(project=project, strategy="field", is_active=True).order_by("-priority").first()
    assert top is not None
    page.context.clear_cookies()
    log_in(page, "lab1")
    page.goto(f"/projects/{project.slug}/label/")
    expect(page.locator("#lab-image")).to_be_visible()
    expect(page.locator("#lab-meta")).to_contain_text("field")
    # The page leases the item it shows, then prefetches the next one: the first lease is the shown item.
    served = Assignment.objects.filter(labeler__username="lab1", status="leased").order_by("pk").first()
    assert served.item_id == top.item_id and served.item.source_name == "field"
    expect(page.get_by_test_id("drift-banner")).to_have_count(0)
