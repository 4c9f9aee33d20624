"""An SME's review in a real Chromium (issue 19): the item page shows the gold label, why the item
is in the queue and the same consensus as the queue; `z` undoes a resolution from the next item;
a merge asks for confirmation stating what moves; the queue has a second page."""

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import add_image_item, log_in

pytestmark = [pytest.mark.e2e]


@pytest.fixture
def page(page):
    # These pages compute the whole queue per request; on a loaded machine that can take seconds.
    page.set_default_timeout(20_000)
    return page


def _disputed(project, users, n, *, gold_every=0):
    """n image items, each labelled crow/dove/owl by the users so that they disagree."""
    from annotation.models import Annotation, AnnotationLabel, GoldLabel, GoldLabelClass, LabelClass
    from annotation.services import labeling

    classes = {c.name: c for c in LabelClass.objects.filter(project=project)}
    names = ["crow", "dove", "owl"]
    items = []
    for i in range(n):
        item = add_image_item(project, f"bird-{i:02d}", seed=i, in_consistency_sample=True)
        for j, user in enumerate(users):
            a = Annotation.objects.create(item=item, labeler=user)
            AnnotationLabel.objects.create(annotation=a, label_class=classes[names[(i + j * (1 + i % 2)) % 3]])
        if gold_every and i % gold_every == 0:
            gold = GoldLabel.objects.create(item=item)
            GoldLabelClass.objects.create(gold=gold, label_class=classes["owl"])
        items.append(item)
    labeling.refresh_queue_state(project)
    return items


@pytest.fixture
def lab3(transactional_db, project):
    from annotation.models import Membership
    from tests.conftest import make_user

    user = make_user("lab3")
    Membership.objects.create(user=user, project=project, role="labeler")
    return user


def test_the_item_page_shows_gold_reasons_and_the_queues_consensus(
    page, base_url, project, labeler, labeler2, lab3, sme
):
    items = _disputed(project, [labeler, labeler2, lab3], 4, gold_every=2)
    log_in(page, "sme")
    expect(page).to_have_url(f"{base_url}/")
    page.goto(f"/projects/{project.slug}/review/?reason=gold_wrong")
    rows = page.get_by_test_id("review-queue").locator("tbody tr")
    expect(rows).to_have_count(2)
    queue_consensus = rows.first.get_by_test_id("row-consensus").inner_text()  # e.g. "dove (0.62)"
    rows.first.locator("a").click()

    expect(page.get_by_test_id("gold")).to_have_text("owl")
    reasons = page.get_by_test_id("item-reasons")
    expect(reasons).to_contain_text("Gold item most got wrong")
    expect(reasons).to_contain_text("Labelers disagree")
    name, confidence = queue_consensus.split(" ")
    expect(page.get_by_test_id("consensus")).to_have_text(name)
    expect(page.get_by_test_id("consensus-confidence")).to_have_text(confidence)
    expect(page.get_by_test_id("consensus-method")).to_contain_text("Dawid\N{EN DASH}Skene")
    expect(page.get_by_test_id("queue-position")).to_contain_text("Item 1 of 2 in the queue")
    expect(page.get_by_test_id("queue-position")).to_contain_text("filtered by reason: gold_wrong")

    page.keyboard.press("j")  # the next item of the same filtered queue, without a page load
    expect(page.get_by_test_id("queue-position")).to_contain_text("Item 2 of 2 in the queue")
    expect(page).to_have_url(f"{base_url}/projects/{project.slug}/review/items/{items[2].pk}/?reason=gold_wrong")
    expect(page.get_by_test_id("gold")).to_have_text("owl")


def test_z_undoes_a_resolution_from_the_next_item(page, base_url, project, labeler, labeler2, lab3, sme):
    from annotation.models import AdjudicationEvent, Resolution

    _disputed(project, [labeler, labeler2, lab3], 3)
    log_in(page, "sme")
    expect(page).to_have_url(f"{base_url}/")
    page.goto(f"/projects/{project.slug}/review/")
    page.get_by_test_id("review-queue").locator("tbody tr a").first.click()
    panel = page.locator(".adj-panel")
    first = panel.get_attribute("data-item")
    page.keyboard.press("1")  # crow
    expect(page.locator(".adj-panel")).not_to_have_attribute("data-item", first)
    expect(page.get_by_test_id("adj-status")).to_contain_text("Press z to undo")
    assert Resolution.objects.filter(item_id=int(first), is_current=True).exists()

    page.keyboard.press("z")
    expect(page.locator(".adj-panel")).to_have_attribute("data-item", first)
    expect(page.get_by_test_id("adj-status")).to_contain_text("Undone")
    expect(page.get_by_test_id("item-history")).to_contain_text("undone by sme")
    assert not Resolution.objects.filter(item_id=int(first), is_current=True).exists()
    assert AdjudicationEvent.objects.get(item_id=int(first)).undone_at is not None

    page.keyboard.press("2")  # decided again, as dove
    expect(page.locator(".adj-panel")).not_to_have_attribute("data-item", first)
    current = Resolution.objects.get(item_id=int(first), is_current=True)
    assert [c.name for c in current.labels.all()] == ["dove"]


def test_after_the_last_item_the_queue_page_offers_the_undo(page, base_url, project, labeler, labeler2, lab3, sme):
    from annotation.models import Resolution

    (item,) = _disputed(project, [labeler, labeler2, lab3], 1)
    log_in(page, "sme")
    expect(page).to_have_url(f"{base_url}/")
    page.goto(f"/projects/{project.slug}/review/items/{item.pk}/")
    page.keyboard.press("a")  # ambiguous; the queue is empty now
    expect(page.get_by_test_id("review-queue")).to_contain_text("Nothing to review.")
    assert Resolution.objects.get(item=item).is_ambiguous
    page.get_by_test_id("undo").click()
    expect(page.get_by_test_id("queue-position")).to_contain_text("Item 1 of 1 in the queue")
    expect(page.get_by_test_id("item-history")).to_contain_text("Marked ambiguous by sme undone by sme")
    assert not Resolution.objects.filter(item=item, is_current=True).exists()


def test_a_merge_asks_for_confirmation_stating_what_moves(page, base_url, project, labeler, labeler2, lab3, mle):
    from annotation.models import AnnotationLabel, LabelClass

    _disputed(project, [labeler, labeler2, lab3], 4)
    moving = AnnotationLabel.objects.filter(label_class__name__in=["crow", "dove"]).count()
    log_in(page, "mle")
    expect(page).to_have_url(f"{base_url}/")
    page.goto(f"/projects/{project.slug}/classes/")
    page.get_by_label("crow", exact=True).check()
    page.get_by_label("dove", exact=True).check()
    page.get_by_label("or a new class").fill("corvid")
    page.get_by_role("button", name="Preview").click()
    expect(page.get_by_test_id("merge-sentence")).to_contain_text(f"{moving} labels move from crow and dove to corvid")

    page.get_by_test_id("merge").click()
    dialog = page.get_by_test_id("confirm-dialog")
    expect(dialog).to_be_visible()
    expect(page.get_by_test_id("confirm-text")).to_contain_text(f"{moving} labels move from crow and dove to corvid")
    expect(page.get_by_test_id("confirm-text")).to_contain_text("Krippendorff's \N{GREEK SMALL LETTER ALPHA}")
    page.keyboard.press("Escape")  # keyboard: cancel
    expect(dialog).to_be_hidden()
    assert not LabelClass.objects.filter(project=project, name="corvid").exists()

    page.get_by_test_id("merge").click()
    expect(dialog).to_be_visible()
    page.keyboard.press("Tab")  # from Cancel (focused first) to Confirm
    page.keyboard.press("Enter")
    expect(page.locator("body")).to_contain_text("Classes merged.")
    corvid = LabelClass.objects.get(project=project, name="corvid")
    assert AnnotationLabel.objects.filter(label_class=corvid).count() == moving
    assert set(LabelClass.objects.filter(merged_into=corvid).values_list("name", flat=True)) == {"crow", "dove"}


def test_the_review_queue_has_a_second_page_with_thumbnails(page, base_url, project, labeler, labeler2, lab3, sme):
    _disputed(project, [labeler, labeler2, lab3], 55)
    log_in(page, "sme")
    expect(page).to_have_url(f"{base_url}/")
    page.goto(f"/projects/{project.slug}/review/")
    rows = page.get_by_test_id("review-queue").locator("tbody tr")
    expect(rows).to_have_count(50)
    expect(page.get_by_test_id("queue-range")).to_contain_text("Items 1\N{EN DASH}50 of 55")
    first_page = set(rows.evaluate_all("rows => rows.map(r => r.dataset.item)"))
    page.get_by_test_id("next-page").click()
    expect(rows).to_have_count(5)
    expect(page.get_by_test_id("queue-range")).to_contain_text("Items 51\N{EN DASH}55 of 55")
    second_page = set(rows.evaluate_all("rows => rows.map(r => r.dataset.item)"))
    assert len(first_page) == 50 and len(second_page) == 5 and not first_page & second_page
    thumb = rows.first.locator("img.adj-thumb")
    expect(thumb).to_be_visible()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=thumb.element_handle())
    page.get_by_test_id("prev-page").click()
    expect(rows).to_have_count(50)
    assert set(rows.evaluate_all("rows => rows.map(r => r.dataset.item)")) == first_page
