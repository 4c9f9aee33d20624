"""An SME at work in a real Chromium: resolves queue items by keyboard, marks one ambiguous,
publishes a guideline version; a labeler then sees the "new guideline" banner.

Saves a screenshot of the SME item page to pytest-playwright's output folder; with
CONCORD_SCREENSHOTS=1 also to docs/screenshots/adjudication.png for the README.
"""

import os
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import add_image_item, log_in

pytestmark = [pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def disputed(transactional_db, project, labeler, labeler2, sme):
    from annotation.models import Annotation, AnnotationLabel, LabelClass, Membership
    from annotation.services import labeling
    from tests.conftest import make_user

    third = make_user("lab3")
    Membership.objects.create(user=third, project=project, role="labeler")
    classes = {c.name: c for c in LabelClass.objects.filter(project=project)}
    items = []
    for n in range(4):
        item = add_image_item(project, f"bird-{n}", seed=n, in_consistency_sample=True, metadata={"site": "north"})
        for user, name in ((labeler, "crow"), (labeler2, "dove"), (third, "crow" if n % 2 else "owl")):
            a = Annotation.objects.create(item=item, labeler=user, note="<b>looks odd</b>" if n == 0 else "")
            AnnotationLabel.objects.create(annotation=a, label_class=classes[name])
        items.append(item)
    labeling.refresh_queue_state(project)
    return items


def test_an_sme_resolves_by_keyboard_and_publishes_a_guideline(page, base_url, project, disputed, output_path):
    from annotation.models import Guideline, Resolution

    log_in(page, "sme")
    expect(page).to_have_url(f"{base_url}/")
    page.goto(f"/projects/{project.slug}/")
    page.get_by_test_id("review-queue-link").click()
    expect(page.get_by_test_id("review-queue").locator("tbody tr")).to_have_count(4)
    page.get_by_test_id("review-queue").locator("tbody tr a").first.click()
    panel = page.locator(".adj-panel")
    expect(panel).to_be_visible()
    expect(page.get_by_test_id("item-labels")).to_contain_text("lab1")

    seen = []
    for key in ("1", "2", "1"):
        before = panel.get_attribute("data-item")
        seen.append(int(before))
        page.keyboard.press(key)
        expect(page.locator(".adj-panel")).not_to_have_attribute("data-item", before)
    page.screenshot(path=Path(output_path) / "adjudication.png")
    if os.environ.get("CONCORD_SCREENSHOTS") == "1":
        page.screenshot(path=ROOT / "docs" / "screenshots" / "adjudication.png")
    last = int(panel.get_attribute("data-item"))
    page.keyboard.press("a")  # the last item: ambiguous, then back to the (now empty) queue
    expect(page.get_by_test_id("review-queue")).to_contain_text("Nothing to review.")

    decided = {r.item_id: r for r in Resolution.objects.filter(is_current=True).prefetch_related("labels")}
    assert set(decided) == {*seen, last} == {i.pk for i in disputed}
    assert [[c.name for c in decided[pk].labels.all()] for pk in seen] == [["crow"], ["dove"], ["crow"]]
    assert decided[last].is_ambiguous and all(not decided[pk].is_ambiguous for pk in seen)

    page.goto(f"/projects/{project.slug}/guidelines/")
    page.get_by_label("Markdown").fill("# Birds\n\nA **crow** has a black beak.")
    page.get_by_test_id("publish").click()
    expect(page.get_by_test_id("publish-preview")).to_contain_text("first version")  # the confirmation
    page.get_by_test_id("confirm-ok").click()
    expect(page.get_by_test_id("guideline-versions")).to_contain_text("v1")
    assert Guideline.objects.get(project=project).published_at is not None

    page.get_by_role("button", name="Log out").click()
    log_in(page, "lab1")
    expect(page).to_have_url(f"{base_url}/")
    page.goto(f"/projects/{project.slug}/label/")
    expect(page.get_by_test_id("guideline-banner")).to_contain_text("Guideline v1")
    expect(page.locator(".guide__text strong")).to_have_text("crow")
