"""No key is lost on the labeling page, in a real Chromium: typing ahead of the screen, a slow
server, a response lost on its way back, a submit that finally fails, the guideline banner's key.

The server is slowed in the test only: the labeling API's views are wrapped (monkeypatch on the
view classes, which the live server's thread looks up on each request) with a delay and a gate
the test holds shut to keep the next item from arriving while it looks at the page.
"""

import re
import threading
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.conftest import make_user
from tests.e2e.conftest import add_image_item, log_in

pytestmark = [pytest.mark.e2e]

CLASSES = {"1": "crow", "2": "dove", "3": "owl"}
# 20 keys, every class, repeats and changes, so a label landing on the wrong item shows.
TWENTY_KEYS = list("12331213223311212312")

# Records every item the page shows, in order: the stage's data-item as it changes.
RECORD_SHOWN = """() => {
    const stage = document.getElementById("lab-stage");
    const before = [];
    new MutationObserver((records) => {
        for (const record of records) before.push(record.oldValue);
    }).observe(stage, { attributes: true, attributeFilter: ["data-item"], attributeOldValue: true });
    window.concordShown = () => {
        const values = [...before, stage.dataset.item ?? null].filter((value) => value !== null);
        return values.filter((value, i) => i === 0 || value !== values[i - 1]).map(Number);
    };
}"""


@pytest.fixture
def keys_project(transactional_db):
    """An image project (keys 1 crow, 2 dove, 3 owl) of 30 items, each needing one label."""
    from annotation.models import Membership
    from annotation.services.projects import create_project

    project = create_project(slug="keys", name="Keys", data_kind="image", classes=list(CLASSES.values()))
    for n in range(30):
        add_image_item(project, f"k{n:02d}", seed=n)
    Membership.objects.create(user=make_user("typist"), project=project, role="labeler")
    return project


class SlowServer:
    """Every next-item and submit waits `delay` seconds; next-item also waits while the gate is shut."""

    def __init__(self, delay):
        self.delay = delay
        self.gate = threading.Event()
        self.gate.set()

    def wrap(self, view, gated):
        def slow(view_self, request, *args, **kwargs):
            time.sleep(self.delay)
            if gated:
                self.gate.wait(timeout=30)
            return view(view_self, request, *args, **kwargs)

        return slow


@pytest.fixture
def slow_server(monkeypatch):
    from annotation.api.labeling import AnnotationList, NextItem

    server = SlowServer(delay=0.3)
    monkeypatch.setattr(NextItem, "get", server.wrap(NextItem.get, gated=True))
    monkeypatch.setattr(AnnotationList, "post", server.wrap(AnnotationList.post, gated=False))
    yield server
    server.gate.set()  # never leave a server thread waiting


PENDING = re.compile(r"\bis-pending\b")


def open_labeling(page):
    page.set_default_navigation_timeout(30_000)  # a first page load on a busy shared machine
    log_in(page, "typist")
    expect(page).not_to_have_url(re.compile(r"/login/"))
    page.goto("/projects/keys/label/")
    # As a person finds the page: the first item on screen, the next one prefetched.
    expect(page.locator("#lab-work")).to_have_attribute("data-next", "ready")
    page.evaluate(RECORD_SHOWN)


def settle(page):
    """Wait until the page has no request on its way (its last act is the prefetch), so the test
    database is not flushed under a request of the live server."""
    expect(page.locator("#lab-work")).to_have_attribute("data-next", re.compile(r"^(ready|none)$"), timeout=30_000)


def type_keys(page, keys, gap_ms=50):
    for key in keys:
        page.keyboard.press(key)
        page.wait_for_timeout(gap_ms)


def saved_labels():
    """[(item id, class name)] of typist's labels, in the order the server took them."""
    from annotation.models import Annotation

    annotations = Annotation.objects.filter(labeler__username="typist").order_by("created_at", "pk")
    return [(a.item_id, [c.name for c in a.labels.all()]) for a in annotations.prefetch_related("labels")]


def expect_all_saved(page, count):
    expect(page.locator("#lab-saved")).to_have_text(str(count), timeout=60_000)
    expect(page.locator("#lab-stage")).to_have_attribute("data-waiting", "0")
    expect(page.locator("#lab-sending-part")).to_be_hidden()
    expect(page.locator("#lab-stage")).not_to_have_class(PENDING)
    expect(page.locator("#lab-failures")).to_be_hidden()


def test_twenty_keys_fifty_ms_apart_label_the_twenty_items_shown_in_order(keys_project, page):
    open_labeling(page)

    type_keys(page, TWENTY_KEYS)

    expect_all_saved(page, 20)
    expect(page.locator("#lab-done")).to_have_text("20")
    shown = page.evaluate("window.concordShown()")
    assert len(shown) == 21 and len(set(shown)) == 21  # 20 labelled, the 21st on screen now
    assert shown[-1] == int(page.locator("#lab-stage").get_attribute("data-item"))
    assert saved_labels() == [(item, [CLASSES[key]]) for item, key in zip(shown, TWENTY_KEYS, strict=False)]
    settle(page)


def test_a_slow_server_shows_the_pending_state_and_keys_wait_their_turn(keys_project, slow_server, page, output_path):
    open_labeling(page)
    stage, pending = page.locator("#lab-stage"), page.locator("#lab-pending")
    waiting = page.locator("#lab-waiting-keys kbd")

    slow_server.gate.clear()  # the item after the prefetched one will not come until the gate opens
    page.keyboard.press("1")  # labels the first item; the prefetched second shows at once
    expect(stage).not_to_have_class(PENDING)
    page.keyboard.press("2")  # labels the second; the third is held at the gate
    expect(stage).to_have_class(PENDING)
    expect(pending).to_be_visible()
    expect(pending).to_contain_text("Loading the next item")
    expect(page.locator("#lab-image")).to_be_hidden()  # the item just labelled is not left on screen

    type_keys(page, ["3", "1", "2"])
    expect(waiting).to_have_text(["3", "1", "2"])
    page.keyboard.press("z")  # takes the last waiting key back; nothing was sent for it
    expect(waiting).to_have_text(["3", "1"])
    expect(page.locator("#lab-status")).to_contain_text("Took back the waiting key 2")
    page.keyboard.press("u")  # needs the item on screen: refused, visibly
    expect(page.locator("#lab-status")).to_contain_text("wait for it to show")
    type_keys(page, ["3"])
    expect(waiting).to_have_text(["3", "1", "3"])
    page.screenshot(path=Path(output_path) / "labeling-pending.png", animations="disabled")  # an artifact to look at

    slow_server.gate.set()
    type_keys(page, ["2", "1", "3", "3", "2"])  # the server stays slow: more keys wait and go in turn

    keys = ["1", "2", "3", "1", "3", "2", "1", "3", "3", "2"]
    expect_all_saved(page, len(keys))
    shown = page.evaluate("window.concordShown()")
    assert len(shown) == len(keys) + 1 and len(set(shown)) == len(shown)
    assert saved_labels() == [(item, [CLASSES[key]]) for item, key in zip(shown, keys, strict=False)]
    settle(page)


def test_a_lost_response_is_retried_once_and_a_final_failure_is_listed_and_can_be_sent_again(
    keys_project, monkeypatch, page
):
    from django.http import HttpResponse

    from annotation.api.labeling import AnnotationList

    real_post = AnnotationList.post
    plan = []  # what the next submits meet: "lost" (written, then a 502), "down" (a 503, nothing written)
    seen_client_ids = []

    def flaky_post(view_self, request, *args, **kwargs):
        seen_client_ids.append(request.data.get("client_id"))
        trouble = plan.pop(0) if plan else None
        if trouble == "down":
            return HttpResponse("unavailable", status=503)
        response = real_post(view_self, request, *args, **kwargs)
        return HttpResponse("bad gateway", status=502) if trouble == "lost" else response

    monkeypatch.setattr(AnnotationList, "post", flaky_post)
    open_labeling(page)

    # The label is written but its answer is lost: the retry, with the same client_id, gets the first one back.
    plan[:] = ["lost"]
    page.keyboard.press("2")
    expect(page.locator("#lab-saved")).to_have_text("1")
    assert len(seen_client_ids) == 2 and seen_client_ids[0] == seen_client_ids[1]
    shown = page.evaluate("window.concordShown()")
    assert saved_labels() == [(shown[0], ["dove"])]

    # The server is down for every attempt: the page lists the label as not saved, with Send again.
    plan[:] = ["down"] * 4
    page.keyboard.press("3")
    failures = page.locator("#lab-failures")
    expect(failures).to_be_visible(timeout=10_000)
    expect(failures).to_contain_text(f"Not saved: item {shown[1]} as owl")
    expect(page.locator("#lab-saved")).to_have_text("1")
    assert len(saved_labels()) == 1

    failures.get_by_role("button", name="Send again").click()  # the server is back
    expect(page.locator("#lab-saved")).to_have_text("2")
    expect(failures).to_be_hidden()
    assert len(set(seen_client_ids[2:])) == 1  # every attempt and the resend carried one client_id
    assert saved_labels() == [(shown[0], ["dove"]), (shown[1], ["owl"])]
    settle(page)


def test_escape_marks_a_new_guideline_read_without_leaving_the_page(keys_project, page):
    from django.utils import timezone

    from annotation.models import Guideline, Membership

    Guideline.objects.create(project=keys_project, version=1, text="Crows are black.", published_at=timezone.now())
    open_labeling(page)
    banner = page.get_by_test_id("guideline-banner")
    expect(banner).to_be_visible()
    expect(banner.get_by_role("button", name="Esc I have read it")).to_be_visible()  # the key is on screen

    page.keyboard.press("1")  # a label on its way is not cut off by the banner
    page.keyboard.press("Escape")

    expect(banner).to_be_hidden()
    expect(page.locator("#lab-status")).to_contain_text("Guideline v1 marked as read")
    expect(page.locator("#lab-saved")).to_have_text("1")
    assert Membership.objects.get(user__username="typist").last_seen_guideline_version == 1
    assert len(saved_labels()) == 1
    settle(page)
