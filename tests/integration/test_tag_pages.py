"""Tags on the SME pages: the item page (chips, history lines, the tag box and its key), the review
queue (per-row chips, "Tag all matching" by the current filter) and the item browser (filter by
tag, bulk tag by the filter); labelers get the 403 page, non-members 404; names are escaped."""

import json

import pytest
from django.urls import reverse

from annotation.models import ItemTag, TagEvent
from annotation.services import tags
from frontend.adjudication_views import ACTION_KEYS
from tests.integration.test_tags import items  # noqa: F401 (the fixture)

pytestmark = pytest.mark.django_db

XSS = "<script>alert(1)</script>"


def test_item_page_shows_chips_history_and_the_tag_box(project, items, client, sme):  # noqa: F811
    a = items[0]
    tags.tag_item(project, sme, a.pk, name=XSS)
    tags.tag_item(project, sme, a.pk, name="blurry")
    tags.tag_item(project, sme, a.pk, name="blurry", add=False)
    client.force_login(sme)
    response = client.get(reverse("adjudication:item", args=[project.slug, a.pk]))
    page = response.content.decode()
    assert response.status_code == 200
    assert XSS not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'data-testid="item-tags"' in page and 'data-testid="tag-box"' in page and "tagging.js" in page
    chips = page.split('data-testid="item-tags"')[1].split("</div>")[0]
    assert "data-remove-tag" in chips and 'data-tag="blurry"' not in chips  # removed again
    history = page.split('data-testid="item-history"')[1].split("</ol>")[0]
    assert "Tag blurry added" in history and "Tag blurry removed" in history
    config = json.loads(page.split('id="adj-config" type="application/json">')[1].split("</script>")[0])
    assert {t["name"] for t in config["tags"]} == {XSS, "blurry"}
    assert "t" in ACTION_KEYS and "t" not in config["keys"]  # no class shortcut takes the tag key


def test_the_panel_swapped_in_by_next_carries_the_tags(project, items, client, sme):  # noqa: F811
    b = items[1]
    tags.tag_item(project, sme, b.pk, name="reflection")
    client.force_login(sme)
    panel = client.get(reverse("adjudication:item-panel", args=[project.slug, b.pk])).content.decode()
    assert 'data-tag="reflection"' in panel


def test_queue_rows_show_tags_and_tag_all_matching_uses_the_filter(project, items, client, sme):  # noqa: F811
    a, b, _c, _d = items
    tags.tag_item(project, sme, a.pk, name="car-noise")
    client.force_login(sme)
    queue = reverse("adjudication:queue", args=[project.slug])
    page = client.get(queue, {"slice": "noise=car"}).content.decode()
    assert page.count('data-testid="row-tags"') == 1 and 'data-tag="car-noise"' in page
    assert 'data-testid="tag-matching"' in page and 'name="slice" value="noise=car"' in page
    response = client.post(
        reverse("adjudication:tag-matching", args=[project.slug]),
        {"page": "queue", "slice": "noise=car", "name": "seen", "next": f"{queue}?slice=noise%3Dcar"},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == f"{queue}?slice=noise%3Dcar"
    assert "1 of 1 matching items now carry the tag seen (a new tag)" in response.content.decode()
    assert set(ItemTag.objects.filter(tag__name="seen").values_list("item_id", flat=True)) == {a.pk}
    # A bad filter tags nothing and says why; an outside `next` is not followed.
    response = client.post(
        reverse("adjudication:tag-matching", args=[project.slug]),
        {"page": "queue", "reason": "bored", "name": "never", "next": "https://evil.example/"},
    )
    assert response.status_code == 302 and response["Location"] == queue
    assert not ItemTag.objects.filter(tag__name="never").exists()
    # Without a filter, every item of the queue (both pages' worth).
    client.post(reverse("adjudication:tag-matching", args=[project.slug]), {"page": "queue", "name": "all"})
    assert set(ItemTag.objects.filter(tag__name="all").values_list("item_id", flat=True)) == {a.pk, b.pk}


def test_item_browser_filters_by_tag_and_tags_in_bulk(project, items, client, sme):  # noqa: F811
    a, _b, c, _d = items
    client.force_login(sme)
    browser = reverse("frontend:project-items", args=[project.slug])
    client.post(
        reverse("adjudication:tag-matching", args=[project.slug]),
        {"page": "browser", "slice": "noise=car", "source": "", "name": "car"},
    )
    assert set(ItemTag.objects.values_list("item_id", flat=True)) == {a.pk, c.pk}
    assert TagEvent.objects.filter(actor=sme, action="added").count() == 2
    page = client.get(browser, {"tag": "car"}).content.decode()
    assert page.count('class="ib-tile"') == 2 and 'data-testid="tag-filter"' in page
    assert 'data-testid="tag-matching"' in page
    bad = client.get(browser, {"tag": "nope"})
    assert bad.status_code == 400 and 'data-error-for="tag"' in bad.content.decode()
    client.post(
        reverse("adjudication:tag-matching", args=[project.slug]),
        {"page": "browser", "tag": "car", "name": "car", "action": "remove"},
    )
    assert not ItemTag.objects.exists()


def test_labelers_and_outsiders_cannot_reach_the_tag_pages(project, items, client, labeler, outsider):  # noqa: F811
    url = reverse("adjudication:tag-matching", args=[project.slug])
    client.force_login(labeler)
    assert client.post(url, {"page": "queue", "name": "x"}).status_code == 403
    client.force_login(outsider)
    assert client.post(url, {"page": "queue", "name": "x"}).status_code == 404
    assert not ItemTag.objects.exists()
