"""Live status in a real Chromium: a TFLite export, a quality refresh and an import batch update on
their pages without a reload, and a promote asks for confirmation (Cancel changes nothing,
Confirm promotes).

The background work itself is not run here (a TFLite conversion takes minutes): the test changes
the very row the page polls, as the worker would, and watches the page follow. Each page is
marked with a property on `window` first; a reload would lose it.
"""

import pytest
from django.core.cache import cache
from playwright.sync_api import expect

from tests.e2e.conftest import log_in
from tests.integration.test_export import fake_ready_export, fake_ready_version
from tests.integration.training_data import add_digit_items, label

pytestmark = [pytest.mark.e2e]
WAIT_MS = 15_000  # polls come every 2-3 s


@pytest.fixture
def staff(transactional_db, project, mle, labeler, labeler2):
    cache.clear()  # the quality refresh throttle lives in the cache
    add_digit_items(project, 15)
    return project


def mark(page):
    page.evaluate("window.__notReloaded = true")


def still_marked(page):
    return page.evaluate("window.__notReloaded === true")


def test_a_tflite_export_finishes_on_the_model_page_without_a_reload(page, staff, mle):
    from training.models import ModelExport

    version = fake_ready_version(staff)
    done = fake_ready_export(version)  # its bundle file, for the one being watched to finish with
    running = ModelExport.objects.create(model_version=version, format="float32")

    log_in(page, "mle")
    page.goto(f"/projects/{staff.slug}/models/{version.short_id}/")
    row = page.locator(f'tr[data-export="{running.pk}"]')
    expect(row.locator('[data-cell="export-status"]')).to_have_text("Exporting")
    expect(row.get_by_role("link", name="Download")).to_have_count(0)
    mark(page)

    ModelExport.objects.filter(pk=running.pk).update(
        status="ready", bundle=done.bundle, sha256=done.sha256, size_bytes=done.size_bytes
    )
    expect(row.locator('[data-cell="export-status"]')).to_have_text("Ready", timeout=WAIT_MS)
    expect(row.get_by_role("link", name="Download")).to_be_visible()
    assert still_marked(page)


def test_the_quality_page_shows_a_refreshed_report_without_a_reload(page, staff, mle, labeler, labeler2):
    from annotation.models import Item, LabelClass
    from annotation.services import quality

    crow, dove = (LabelClass.objects.get(project=staff, name=n) for n in ("crow", "dove"))
    items = list(Item.objects.filter(project=staff).order_by("pk"))
    for item in items:
        label(item, labeler, crow)
        label(item, labeler2, crow)
    first = quality.compute_quality_report(staff)
    label(items[0], mle, dove)  # the report is stale now

    log_in(page, "mle")
    page.goto(f"/projects/{staff.slug}/quality/")
    expect(page.get_by_test_id("stale-notice")).to_be_visible()
    expect(page.get_by_test_id("report-age")).to_contain_text("from 30 annotations")
    box = page.locator("[data-quality-report]")
    expect(box).to_have_attribute("data-report-id", str(first.pk))
    expect(page.locator('[data-stat="alpha"] .stat__label')).to_have_text("Krippendorff's \N{GREEK SMALL LETTER ALPHA}")
    # innerText is the text as drawn: the heading's uppercase must leave kappa a small kappa.
    kappa = page.locator('table[data-table="labelers"] th[title^="Cohen"]')
    assert kappa.inner_text() == "\N{GREEK SMALL LETTER KAPPA}"
    assert page.locator('table[data-table="labelers"] th').first.inner_text() == "LABELER"  # uppercase elsewhere
    mark(page)

    second = quality.compute_quality_report(staff)  # what the worker does
    expect(box).to_have_attribute("data-report-id", str(second.pk), timeout=WAIT_MS)
    expect(page.get_by_test_id("stale-notice")).to_have_count(0)
    expect(page.get_by_test_id("report-age")).to_contain_text("from 31 annotations")
    assert still_marked(page)


def test_an_import_batch_updates_in_place_on_the_project_page(page, staff, mle):
    from annotation.models import ImportBatch

    batch = ImportBatch.objects.create(project=staff, kind="images", source_name="late.zip", status="running")
    log_in(page, "mle")
    page.goto(f"/projects/{staff.slug}/")
    row = page.locator(f'tr[data-batch="{batch.pk}"]')
    expect(row.locator('[data-cell="import-status"]')).to_be_visible()
    mark(page)

    ImportBatch.objects.filter(pk=batch.pk).update(status="failed", rejected_count=4)
    expect(row).to_have_attribute("data-status", "failed", timeout=WAIT_MS)
    expect(row.locator('[data-cell="import-status"]')).to_have_text("Failed")
    expect(row.locator("td.is-bad")).to_have_text("4")
    assert still_marked(page)


def test_promote_asks_for_confirmation_naming_both_models(page, staff, mle):
    from training import services
    from training.models import ModelVersion

    old, new = fake_ready_version(staff, "sklearn_logreg"), fake_ready_version(staff, "sklearn_logreg")
    ModelVersion.objects.filter(pk=old.pk).update(metrics={"evaluation": {"accuracy": 0.875}})
    ModelVersion.objects.filter(pk=new.pk).update(metrics={"evaluation": {"accuracy": 0.9125}})
    services.promote(ModelVersion.objects.get(pk=old.pk), user=mle)

    log_in(page, "mle")
    page.goto(f"/projects/{staff.slug}/models/{new.short_id}/")
    dialog = page.get_by_test_id("confirm-dialog")
    expect(dialog).to_be_hidden()

    # Cancel: the dialog closes and nothing changes.
    page.get_by_role("button", name="Promote to current").click()
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("heading")).to_have_text(f"Promote model {new.short_id}?")
    expect(dialog).to_contain_text(f"model {old.short_id} · dev accuracy 87.5%")
    expect(dialog).to_contain_text(f"model {new.short_id} · dev accuracy 91.2%")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    assert ModelVersion.objects.get(is_promoted=True).pk == old.pk

    # Escape closes it too.
    page.get_by_role("button", name="Promote to current").click()
    expect(dialog).to_be_visible()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert ModelVersion.objects.get(is_promoted=True).pk == old.pk

    # Confirm, with a note: promoted.
    page.get_by_role("button", name="Promote to current").click()
    dialog.get_by_label("Note for the record").fill("better on heavy ink")
    dialog.get_by_role("button", name="Promote").click()
    expect(page.get_by_test_id("current-badge")).to_be_visible()
    expect(page.locator(".message--success")).to_contain_text(f"Model {new.short_id} is now the current model.")
    current = ModelVersion.objects.get(is_promoted=True)
    assert current.pk == new.pk and current.promotions.get().note == "better on heavy ink"
