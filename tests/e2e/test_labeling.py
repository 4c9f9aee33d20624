"""A labeler at work in a real Chromium: keyboard only, against the demo project.

Saves a screenshot of the labeling page as an artifact in pytest-playwright's output folder
(test-results/<test>/labeling.png, gitignored); with CONCORD_SCREENSHOTS=1 also to
docs/screenshots/labeling.png for the README.
"""

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import PASSWORD, log_in

pytestmark = [pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def demo(transactional_db):
    from annotation.services import labeling
    from annotation.services.demo import create_demo

    project, _ = create_demo(password=PASSWORD, simulate_labelers=3, log=lambda *args: None)
    labeling.refresh_queue_state(project)  # the simulated labels were written outside the labeling service
    return project


def _image_src(page):
    return page.locator("#lab-image").get_attribute("src")


# Records, in the page, how long after a key press the image changes (the next item on screen).
INSTRUMENT = """() => {
    window.concordTimings = [];
    let pressed = null;
    document.addEventListener("keydown", (event) => { pressed = [event.key, performance.now()]; }, true);
    new MutationObserver(() => {
        if (pressed) window.concordTimings.push([pressed[0], performance.now() - pressed[1]]);
        pressed = null;
    }).observe(document.getElementById("lab-image"), { attributes: true, attributeFilter: ["src"] });
}"""


def _press_and_wait_for_next(page, key):
    """Press a class key, as a person would once the page is settled (the next item prefetched),
    and wait until another item is on screen."""
    expect(page.locator("#lab-work")).to_have_attribute("data-next", "ready")
    before = _image_src(page)
    page.keyboard.press(key)
    expect(page.locator("#lab-image")).not_to_have_attribute("src", before)


def test_a_demo_labeler_labels_five_items_by_keyboard_with_unsure_note_and_undo(page, base_url, demo, output_path):
    from annotation.models import Annotation, Assignment

    log_in(page, "labeler1")
    expect(page).to_have_url(f"{base_url}/")
    page.goto("/projects/digits/label/")
    expect(page.get_by_role("heading", name="Handwritten digits", level=1)).to_be_visible()
    expect(page.locator(".classbtn")).to_have_count(11)
    expect(page.locator('.classbtn[data-class="unclear"] kbd')).to_have_text("q")
    expect(page.locator(".guide__text")).to_contain_text("Label each image with the digit it shows.")
    expect(page.get_by_test_id("guideline-banner")).to_be_visible()
    image = page.locator("#lab-image")
    expect(image).to_have_class(re.compile(r"\bis-tiny\b"))  # 96 px digits are scaled up pixelated
    expect(image).to_have_js_property("complete", True)
    expect(page.locator("#lab-stage")).to_be_focused()
    page.evaluate(INSTRUMENT)

    served = [_image_src(page)]
    _press_and_wait_for_next(page, "3")
    served.append(_image_src(page))
    _press_and_wait_for_next(page, "7")
    served.append(_image_src(page))

    # Unsure with a note: U moves to the note, Enter goes back to the keys, the key submits.
    page.keyboard.press("u")
    expect(page.locator("#lab-unsure")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#lab-note")).to_be_focused()
    page.keyboard.type("top stroke could be a 7")
    page.keyboard.press("Enter")
    expect(page.locator("#lab-stage")).to_be_focused()
    _press_and_wait_for_next(page, "1")
    served.append(_image_src(page))
    expect(page.locator("#lab-unsure")).to_have_attribute("aria-pressed", "false")
    expect(page.locator("#lab-note")).to_have_value("")

    _press_and_wait_for_next(page, "q")
    served.append(_image_src(page))
    _press_and_wait_for_next(page, "8")
    expect(page.locator("#lab-status")).to_contain_text("Saved: 8")
    expect(page.locator("#lab-done")).to_have_text("5")

    # Z brings the last item back; it is labelled again.
    page.keyboard.press("z")
    expect(page.locator("#lab-status")).to_contain_text("Undone")
    expect(image).to_have_attribute("src", served[4])
    expect(page.locator("#lab-done")).to_have_text("4")
    _press_and_wait_for_next(page, "9")
    expect(page.locator("#lab-done")).to_have_text("5")
    expect(page.locator("#lab-status")).to_contain_text("Saved: 9")

    # Focus is visible when moving by Tab.
    page.keyboard.press("Tab")
    focused = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert focused != "none"

    page.locator("#lab-stage").focus()
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=Path(output_path) / "labeling.png")
    if os.environ.get("CONCORD_SCREENSHOTS") == "1":
        page.screenshot(path=ROOT / "docs" / "screenshots" / "labeling.png")
    timings = page.evaluate("window.concordTimings")
    print("image changed after key:", ", ".join(f"{key} {ms:.0f} ms" for key, ms in timings))

    # The database: five current human labels by labeler1, one unsure with its note, the undone one gone.
    mine = Annotation.objects.filter(labeler__username="labeler1", source="human")
    assert mine.count() == 5 and mine.filter(is_current=True).count() == 5
    ordered = list(mine.order_by("created_at", "pk"))
    assert [[c.name for c in a.labels.all()] for a in ordered] == [["3"], ["7"], ["1"], ["unclear"], ["9"]]
    unsure = ordered[2]
    assert unsure.unsure and unsure.note == "top stroke could be a 7"
    assert not any(a.unsure for a in ordered if a != unsure)
    assert all(a.duration_ms is not None and a.duration_ms > 0 for a in ordered)
    assert all(a.guideline.version == 1 for a in ordered)
    done = Assignment.objects.filter(labeler__username="labeler1", status="done")
    assert set(done.values_list("item_id", flat=True)) == {a.item_id for a in ordered}
    assert len({a.item_id for a in ordered}) == 5
    # The items are the ones shown, in order; the fifth is the undone one, labelled again.
    assert [int(re.search(r"/items/(\d+)/image/", src).group(1)) for src in served] == [a.item_id for a in ordered]


def test_the_page_says_when_nothing_is_left(page, base_url, project, labeler, transactional_db):
    from annotation.models import Annotation, Item

    Item.objects.create(project=project, external_id="only", split="train", text="")
    log_in(page, "lab1")
    expect(page).to_have_url(f"{base_url}/")
    page.goto("/projects/birds/label/")
    expect(page.locator("#lab-empty")).to_be_hidden()
    page.keyboard.press("2")  # dove
    expect(page.get_by_role("heading", name="Nothing left for you to label")).to_be_visible()
    expect(page.locator("#lab-empty")).to_be_focused()
    expect(page.locator("#lab-status")).to_contain_text("Saved: dove")
    assert [c.name for c in Annotation.objects.get().labels.all()] == ["dove"]
    page.keyboard.press("z")  # undo works from the empty screen too
    expect(page.locator("#lab-work")).to_be_visible()
    expect(page.locator("#lab-status")).to_contain_text("Undone")
    expect(page.locator("#lab-done")).to_have_text("0")
    assert not Annotation.objects.exists()
