"""What an MLE and a labeler see of the Foundation's pages, in a real Chromium."""

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import add_image_item, log_in

pytestmark = [pytest.mark.e2e]


@pytest.fixture
def birds_data(transactional_db, project, labeler, labeler2):
    """Five items (two with real images), one gold label, two labelers' annotations."""
    from annotation.models import Annotation, AnnotationLabel, GoldLabel, GoldLabelClass, Item

    crow = project.label_classes.get(name="crow")
    images = [add_image_item(project, f"img-{i}", seed=i) for i in range(2)]
    plain = [
        Item.objects.create(project=project, external_id="b-1", split="train"),
        Item.objects.create(project=project, external_id="b-2", split="dev", in_consistency_sample=True),
        Item.objects.create(project=project, external_id="b-3", split="test"),
    ]
    gold = GoldLabel.objects.create(item=images[0])
    GoldLabelClass.objects.create(gold=gold, label_class=crow)
    for user, item in [(labeler, images[0]), (labeler2, images[0]), (labeler2, plain[0])]:
        annotation = Annotation.objects.create(item=item, labeler=user)
        AnnotationLabel.objects.create(annotation=annotation, label_class=crow)
    return project


def test_mle_logs_in_reads_list_and_project_then_logs_out(page, base_url, birds_data, mle, other_project):

    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/$"))
    log_in(page, "mle")
    expect(page).to_have_url(f"{base_url}/")

    # The list: only the MLE's own project, with its counts.
    expect(page.get_by_role("heading", name="Projects")).to_be_visible()
    row = page.locator('tr[data-project="birds"]')
    expect(row).to_contain_text("Birds")
    expect(row).to_contain_text("ML engineer")
    expect(row.locator('[data-cell="items"]')).to_have_text("5")
    expect(row.locator('[data-cell="labelled"]')).to_contain_text("2")
    expect(row.locator('[data-cell="classes"]')).to_have_text("4")
    expect(page.locator('tr[data-project="reviews"]')).to_have_count(0)

    # The project page: classes with keys, counts, gold for the MLE, thumbnails that load.
    row.get_by_role("link", name="Birds").click()
    expect(page).to_have_url(f"{base_url}/projects/birds/")
    expect(page.get_by_role("heading", name="Birds", level=1)).to_be_visible()
    classes = page.locator("table.table--classes")
    for name in ["crow", "dove", "owl", "unclear"]:
        expect(classes.locator(f'tr[data-class="{name}"]')).to_be_visible()
    expect(classes.locator('tr[data-class="crow"] kbd.keycap')).to_have_text("1")
    expect(classes.locator('tr[data-class="unclear"]')).to_contain_text("Ambiguity")
    expect(page.locator('[data-stat="items"] .stat__value')).to_have_text("5")
    expect(page.locator('[data-stat="labelled"] .stat__value')).to_have_text("2")
    expect(page.locator('[data-stat="annotations"] .stat__value')).to_have_text("3")
    expect(page.locator('[data-stat="labelers"] .stat__value')).to_have_text("2")
    expect(page.locator('[data-stat="gold"] .stat__value')).to_have_text("1")
    expect(page.locator('[data-split="dev"] .split__count')).to_have_text("1")
    thumbnails = page.locator(".thumb img")
    expect(thumbnails).to_have_count(2)
    for i in range(2):
        thumbnails.nth(i).scroll_into_view_if_needed()
        expect(thumbnails.nth(i)).to_have_js_property("complete", True)
        assert thumbnails.nth(i).evaluate("img => img.naturalWidth") == 64

    # Logging out is a POST form; afterwards the pages ask for a login again.
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login/$"))
    page.goto("/projects/birds/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/projects/birds/$"))


def test_labeler_sees_no_gold_and_no_other_labelers(page, base_url, birds_data, labeler):
    log_in(page, "lab1")
    expect(page).to_have_url(f"{base_url}/")
    expect(page.locator('tr[data-project="birds"]')).to_contain_text("Labeler")

    page.goto("/projects/birds/")
    expect(page.get_by_test_id("blind-notice")).to_be_visible()
    expect(page.locator('[data-stat="items"] .stat__value')).to_have_text("5")
    expect(page.locator('[data-stat="gold"]')).to_have_count(0)
    expect(page.locator(".dot--gold")).to_have_count(0)
    expect(page.get_by_role("heading", name="Imports")).to_have_count(0)
    expect(page.get_by_role("heading", name="Labelers", exact=True)).to_have_count(0)
    body = page.locator("main").inner_text()
    assert "lab2" not in body
    assert not re.search(r"\bgold items?\b", body, re.IGNORECASE)


def test_wrong_password_shows_an_error(page, mle):
    log_in(page, "mle", password="not-the-password")
    expect(page).to_have_url(re.compile(r"/login/$"))
    expect(page.get_by_role("alert")).to_contain_text("correct username and password")
    expect(page.get_by_label("Username")).to_have_value("mle")
