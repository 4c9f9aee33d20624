"""An SME tags three items from the review page by keyboard only, in a real Chromium: Tab to the
first item, Enter; `t`, type part of a name, the completion offers the tag, Enter adds it; `j` to
the next item. One tag exists beforehand (chosen by completion), one is created by typing a new
name and then chosen by completion on the third item. The tags are stored with their events and
show on the queue's rows; a chip's remove button takes its tag off.

With CONCORD_SCREENSHOTS=1 also writes docs/screenshots/tagging.png (the tag box open).
"""

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.e2e.test_adjudication import disputed  # noqa: F401 (the fixture)

pytestmark = [pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]


def _tab_to_first_item(page):
    for _ in range(60):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement && document.activeElement.classList.contains('adj-row-link')"):
            return
    raise AssertionError("Tab never reached an item of the queue")


def test_an_sme_tags_three_items_by_keyboard(page, base_url, project, disputed, sme, output_path):  # noqa: F811
    from annotation.models import ItemTag, Tag, TagEvent
    from annotation.services import tags
    from tests.e2e.conftest import log_in

    tags.create_tag(project, sme, "blurry", colour="#dc2626")
    log_in(page, "sme")
    expect(page).to_have_url(f"{base_url}/")
    page.goto(f"/projects/{project.slug}/review/")
    expect(page.get_by_test_id("review-queue").locator("tbody tr")).to_have_count(4)
    _tab_to_first_item(page)
    page.keyboard.press("Enter")
    # Enter follows the link: wait for the item page to load, its deferred scripts (the keys) with it.
    page.wait_for_url(re.compile(r"/review/items/\d+/"))
    panel = page.locator(".adj-panel")
    expect(panel).to_be_visible()
    box, options = page.get_by_test_id("tag-box"), page.locator("#tag-options li")

    tagged = []
    steps = (("blu", "blurry", "blurry"), ("reflection", "Create", "reflection"), ("ref", "reflection", "reflection"))
    for typed, offered, expected in steps:
        item = panel.get_attribute("data-item")
        tagged.append((int(item), expected))
        page.keyboard.press("t")
        expect(box).to_be_visible()
        expect(page.locator("#tag-input")).to_be_focused()
        expect(page.locator("#tag-input")).to_have_value("")  # the key did not type itself
        page.keyboard.type(typed)
        expect(options.first).to_contain_text(offered)
        page.keyboard.press("Enter")
        expect(box).to_be_hidden()
        chips = page.locator(".adj-panel").get_by_test_id("item-tags")
        expect(chips.locator(f'[data-tag="{expected}"]')).to_be_visible()
        expect(page.get_by_test_id("adj-status")).to_contain_text(expected)
        expect(page.get_by_test_id("item-history")).to_contain_text(f"Tag {expected} added")
        page.keyboard.press("j")
        expect(page.locator(".adj-panel")).not_to_have_attribute("data-item", item)

    # The fourth item: the tag box open with its completion, for the README.
    page.keyboard.press("t")
    page.keyboard.type("r")
    expect(options.first).to_contain_text("reflection")
    page.screenshot(path=Path(output_path) / "tagging.png")
    if os.environ.get("CONCORD_SCREENSHOTS") == "1":
        page.screenshot(path=ROOT / "docs" / "screenshots" / "tagging.png")
    page.keyboard.press("Escape")
    expect(box).to_be_hidden()

    stored = sorted(ItemTag.objects.values_list("item_id", "tag__name"))
    assert stored == sorted(tagged)
    assert len({item for item, _ in tagged}) == 3
    events = list(TagEvent.objects.order_by("pk").values_list("item_id", "tag__name", "action", "actor__username"))
    assert events == [(item, name, "added", "sme") for item, name in tagged]
    assert set(Tag.objects.values_list("name", flat=True)) == {"blurry", "reflection"}

    page.goto(f"/projects/{project.slug}/review/")
    expect(page.get_by_test_id("review-queue").locator('[data-tag="reflection"]')).to_have_count(2)

    # The chip's remove button takes a tag off again, recorded as well.
    last_item, last_tag = tagged[-1]
    page.goto(f"/projects/{project.slug}/review/items/{last_item}/")
    page.get_by_role("button", name=f"Remove the tag {last_tag}").click()
    expect(page.get_by_test_id("item-history")).to_contain_text(f"Tag {last_tag} removed")
    expect(page.get_by_test_id("item-tags").locator(f'[data-tag="{last_tag}"]')).to_have_count(0)
    assert not ItemTag.objects.filter(item_id=last_item).exists()
    assert TagEvent.objects.filter(item_id=last_item, action="removed", actor__username="sme").count() == 1
