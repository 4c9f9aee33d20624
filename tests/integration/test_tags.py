"""Tags against the real database: the service (create, edit, delete, add/remove on one item and
in bulk by ids or by a page's filters, idempotence and events), the API (permissions: labelers and
non-members 404; bad input 400 naming the field; nothing half-written), and that labelers never
see a tag on their API or page."""

import threading

import pytest
from django.db import connection
from django.urls import reverse

from annotation.errors import DomainError, NotFound
from annotation.models import ItemTag, Tag, TagEvent
from annotation.services import tags
from tests.conftest import make_user
from tests.integration.test_adjudication import add_item, label

pytestmark = pytest.mark.django_db


@pytest.fixture
def items(project, labeler, labeler2):
    """Four items: two disputed (in the review queue), one agreed, one unlabelled, with metadata."""
    project.overlap = 2
    project.save(update_fields=["overlap"])
    a = add_item(project, "a", metadata={"noise": "car"})
    label(a, labeler, "crow")
    label(a, labeler2, "dove")
    b = add_item(project, "b", metadata={"noise": "rain"})
    label(b, labeler, "crow")
    label(b, labeler2, "owl")
    c = add_item(project, "c", sample=False, metadata={"noise": "car"})
    label(c, labeler, "crow")
    d = add_item(project, "d", sample=False)
    return a, b, c, d


# ---- Service -----------------------------------------------------------------------------------


def test_create_edit_delete_tag(project, sme):
    tag = tags.create_tag(project, sme, "  dark   background ", colour="#AABBCC", description="lights off")
    assert (tag.name, tag.colour, tag.description, tag.created_by) == ("dark background", "#aabbcc", "lights off", sme)
    with pytest.raises(DomainError) as exc:
        tags.create_tag(project, sme, "DARK background")
    assert exc.value.field == "name" and "already" in exc.value.message
    tags.update_tag(project, sme, tag.pk, name="dark", colour="#000000")
    tag.refresh_from_db()
    assert (tag.name, tag.colour, tag.description) == ("dark", "#000000", "lights off")
    assert tags.delete_tag(project, sme, tag.pk) == {"name": "dark", "items": 0}
    assert not Tag.objects.exists()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 61}, "name"),
        ({"name": "a=b"}, "name"),
        ({"name": "bell\x07"}, "name"),
        ({"name": 5}, "name"),
        ({"name": "ok", "colour": "red"}, "colour"),
        ({"name": "ok", "colour": "#12345"}, "colour"),
        ({"name": "ok", "description": "d" * 2001}, "description"),
    ],
)
def test_bad_tag_input_names_the_field(project, sme, kwargs, field):
    name = kwargs.pop("name")
    with pytest.raises(DomainError) as exc:
        tags.create_tag(project, sme, name, **kwargs)
    assert exc.value.field == field
    assert not Tag.objects.exists()


def test_only_smes_and_mles_tag(project, items, labeler, sme, mle, outsider):
    tags.create_tag(project, mle, "blurry")
    for user in (labeler, outsider):
        with pytest.raises(NotFound):
            tags.create_tag(project, user, "x")
        with pytest.raises(NotFound):
            tags.tag_items(project, user, [items[0].pk], name="blurry")
    su = make_user("root")
    su.is_superuser = True
    su.save()
    assert tags.tag_items(project, su, [items[0].pk], name="blurry")["changed"] == 1


def test_add_twice_is_one_row_and_one_event_and_remove_is_recorded(project, items, sme, mle):
    a = items[0]
    first = tags.tag_item(project, sme, a.pk, name="blurry")
    assert (first["created"], first["changed"], first["unchanged"]) == (True, 1, 0)
    again = tags.tag_item(project, mle, a.pk, name="BLURRY")
    assert (again["created"], again["changed"], again["unchanged"]) == (False, 0, 1)
    assert ItemTag.objects.filter(item=a).count() == 1
    assert list(TagEvent.objects.values_list("action", "actor__username")) == [("added", "sme")]
    tags.tag_item(project, mle, a.pk, tag=first["tag"].pk, add=False)
    tags.tag_item(project, mle, a.pk, tag=first["tag"].pk, add=False)  # already gone: nothing
    assert not ItemTag.objects.exists()
    assert list(TagEvent.objects.order_by("pk").values_list("action", "actor__username")) == [
        ("added", "sme"),
        ("removed", "mle"),
    ]
    history = tags.tag_history(a)
    assert [h["what"] for h in history] == ["Tag blurry added", "Tag blurry removed"]
    assert [h["by"] for h in history] == ["sme", "mle"]


def test_removing_by_an_unknown_name_does_not_create_it(project, items, sme):
    with pytest.raises(DomainError) as exc:
        tags.tag_items(project, sme, [items[0].pk], name="nothing", add=False)
    assert exc.value.field == "name"
    assert not Tag.objects.exists()


def test_bulk_by_ids_is_all_or_nothing(project, other_project, items, sme):
    foreign = add_item(other_project, "foreign")
    with pytest.raises(DomainError) as exc:
        tags.tag_items(project, sme, [items[0].pk, foreign.pk], name="blurry")
    assert exc.value.field == "items" and str(foreign.pk) in exc.value.message
    assert not ItemTag.objects.exists() and not TagEvent.objects.exists() and not Tag.objects.exists()
    for bad in ("1,2", [True], ["3"], [-1], [0]):
        with pytest.raises(DomainError) as exc:
            tags.tag_items(project, sme, bad, name="blurry")
        assert exc.value.field == "items"
    result = tags.tag_items(project, sme, [items[0].pk, items[1].pk, items[0].pk], name="blurry")
    assert (result["changed"], result["unchanged"]) == (2, 0)
    assert TagEvent.objects.count() == 2


def test_bulk_by_the_review_queue_filter(project, items, sme):
    a, b, _c, _d = items
    result = tags.tag_matching(project, sme, "queue", {"reason": "disagreement"}, name="disputed-look")
    assert result["matched"] == 2 and result["changed"] == 2
    assert set(ItemTag.objects.values_list("item_id", flat=True)) == {a.pk, b.pk}
    result = tags.tag_matching(project, sme, "queue", {"slice": "noise=car"}, name="car")
    assert set(ItemTag.objects.filter(tag__name="car").values_list("item_id", flat=True)) == {a.pk}
    with pytest.raises(DomainError) as exc:
        tags.tag_matching(project, sme, "queue", {"reason": "bored"}, name="x")
    assert exc.value.field == "reason"
    with pytest.raises(DomainError) as exc:
        tags.tag_matching(project, sme, "queue", {"status": "resolved"}, name="x")
    assert exc.value.field == "filters"
    with pytest.raises(DomainError) as exc:
        tags.tag_matching(project, sme, "inbox", {}, name="x")
    assert exc.value.field == "source"
    assert set(Tag.objects.values_list("name", flat=True)) == {"disputed-look", "car"}


def test_bulk_by_the_item_browser_filter_and_filter_by_tag(project, items, sme):
    a, _b, c, d = items
    tags.tag_matching(project, sme, "browser", {"slice": "noise=car"}, name="car")
    assert set(ItemTag.objects.values_list("item_id", flat=True)) == {a.pk, c.pk}
    tags.tag_matching(project, sme, "browser", {"status": "unlabelled"}, name="empty")
    assert set(ItemTag.objects.filter(tag__name="empty").values_list("item_id", flat=True)) == {d.pk}
    assert sorted(tags.matching_item_ids(project, "browser", {"tag": "CAR"})) == sorted([a.pk, c.pk])
    with pytest.raises(DomainError) as exc:
        tags.matching_item_ids(project, "browser", {"tag": "nope"})
    assert exc.value.field == "tag"
    result = tags.tag_matching(project, sme, "browser", {"tag": "car"}, name="car", add=False)
    assert (result["matched"], result["changed"]) == (2, 2)
    assert TagEvent.objects.filter(action="removed").count() == 2


# ---- API ---------------------------------------------------------------------------------------


def test_api_tags_crud_and_permissions(project, other_project, items, api_as, sme, labeler, outsider):
    url = reverse("api:tag-list", args=[project.pk])
    created = api_as(sme).post(url, {"name": "blurry", "colour": "#ff0000", "description": "soft"}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["name"], body["colour"], body["slice"], body["items"]) == ("blurry", "#ff0000", "tag:blurry=yes", 0)
    detail = reverse("api:tag-detail", args=[project.pk, body["id"]])
    for user in (labeler, outsider):
        client = api_as(user)
        assert client.get(url).status_code == 404
        assert client.post(url, {"name": "x"}, format="json").status_code == 404
        assert client.patch(detail, {"name": "x"}, format="json").status_code == 404
        assert client.delete(detail).status_code == 404
        item_url = reverse("api:item-tags", args=[project.pk, items[0].pk])
        assert client.get(item_url).status_code == 404
        assert client.post(item_url, {"name": "blurry"}, format="json").status_code == 404
        bulk = reverse("api:tag-bulk", args=[project.pk])
        assert client.post(bulk, {"name": "blurry", "items": [items[0].pk]}, format="json").status_code == 404
    assert not ItemTag.objects.exists()
    # A tag of another project is a 404 in this one.
    foreign = Tag.objects.create(project=other_project, name="foreign")
    assert api_as(sme).get(reverse("api:tag-detail", args=[project.pk, foreign.pk])).status_code == 404
    assert api_as(sme).delete(reverse("api:tag-detail", args=[project.pk, foreign.pk])).status_code == 404
    patched = api_as(sme).patch(detail, {"colour": "#00ff00"}, format="json")
    assert patched.status_code == 200 and patched.json()["colour"] == "#00ff00"
    listed = api_as(sme).get(url).json()
    assert [t["name"] for t in listed] == ["blurry"]
    assert api_as(sme).delete(detail).status_code == 204
    assert Tag.objects.filter(project=project).count() == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "n" * 61}, "name"),
        ({"name": ["a"]}, "name"),
        ({"name": "ok", "colour": "#zzzzzz"}, "colour"),
        ({"name": "ok", "description": 3}, "description"),
    ],
)
def test_api_create_bad_input_is_400_naming_the_field(project, api_as, sme, body, field):
    response = api_as(sme).post(reverse("api:tag-list", args=[project.pk]), body, format="json")
    assert response.status_code == 400 and field in response.json(), response.content
    assert not Tag.objects.exists()


def test_api_item_tags_add_remove_and_bulk(project, other_project, items, api_as, sme):
    a, b, _c, _d = items
    item_url = reverse("api:item-tags", args=[project.pk, a.pk])
    client = api_as(sme)
    first = client.post(item_url, {"name": "reflection"}, format="json")
    assert first.status_code == 201 and first.json()["created"] is True
    again = client.post(item_url, {"tag": first.json()["tag"]["id"]}, format="json")
    assert again.status_code == 200 and again.json()["changed"] == 0
    assert [t["name"] for t in client.get(item_url).json()] == ["reflection"]
    assert TagEvent.objects.count() == 1
    # Bad input: 400 naming the field, nothing written.
    for body, field in (
        ({"tag": 999999}, "tag"),
        ({"tag": "x"}, "tag"),
        ({"name": ""}, "name"),
        ({}, "tag"),
        ([1], "non_field_errors"),
    ):
        response = client.post(item_url, body, format="json")
        assert response.status_code == 400 and field in response.json(), (body, response.content)
    foreign_item = add_item(other_project, "foreign")
    assert client.get(reverse("api:item-tags", args=[project.pk, foreign_item.pk])).status_code == 404
    assert client.post(reverse("api:item-tags", args=[project.pk, foreign_item.pk]), {"name": "z"}).status_code == 404
    bulk = reverse("api:tag-bulk", args=[project.pk])
    for body, field in (
        ({"name": "x", "items": [a.pk, foreign_item.pk]}, "items"),
        ({"name": "x", "items": "all"}, "items"),
        ({"name": "x"}, "items"),
        ({"name": "x", "action": "toggle", "items": [a.pk]}, "action"),
        ({"name": "x", "source": "queue", "filters": {"pair": "crow,eagle"}}, "pair"),
        ({"name": "x", "source": "queue", "filters": "reason=unsure"}, "filters"),
        ({"name": "x", "source": "browser", "filters": {"split": "nope"}}, "split"),
    ):
        response = client.post(bulk, body, format="json")
        assert response.status_code == 400 and field in response.json(), (body, response.content)
    assert set(Tag.objects.values_list("name", flat=True)) == {"reflection"}
    done = client.post(bulk, {"name": "Reflection", "source": "queue", "filters": {}}, format="json")
    assert done.status_code == 200, done.content
    assert (done.json()["matched"], done.json()["changed"], done.json()["unchanged"]) == (2, 1, 1)
    assert set(ItemTag.objects.values_list("item_id", flat=True)) == {a.pk, b.pk}
    tag_id = done.json()["tag"]["id"]
    removed = client.delete(reverse("api:item-tag-detail", args=[project.pk, b.pk, tag_id]))
    assert removed.status_code == 200 and removed.json()["changed"] == 1
    assert list(TagEvent.objects.filter(item=b).values_list("action", flat=True)) == ["added", "removed"]
    off = client.post(bulk, {"tag": tag_id, "action": "remove", "items": [a.pk, b.pk]}, format="json")
    assert (off.json()["changed"], off.json()["unchanged"]) == (1, 1)
    assert not ItemTag.objects.exists()


def test_labelers_never_see_tags(project, items, api_as, client, sme, labeler):
    _a, _b, _c, d = items
    tags.create_tag(project, sme, "zebra-crossing-hint")
    tags.tag_items(project, sme, [i.pk for i in items], name="zebra-crossing-hint")
    response = api_as(labeler).get(reverse("api:next-item", args=[project.pk]))
    assert response.status_code == 200 and response.json()["id"] == d.pk, response.content
    assert "zebra-crossing-hint" not in response.content.decode()
    assert "tag:" not in response.content.decode()
    client.force_login(labeler)
    page = client.get(reverse("labeling:label", args=[project.slug]))
    assert page.status_code == 200
    assert "zebra-crossing-hint" not in page.content.decode()
    # The item list of the API is staff-only too? It answers labelers without tags either way.
    items_response = api_as(labeler).get(reverse("api:item-list", args=[project.pk]))
    assert "zebra-crossing-hint" not in items_response.content.decode()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="threads need PostgreSQL; SQLite serialises writers")
@pytest.mark.django_db(transaction=True)
def test_two_smes_adding_the_same_new_tag_at_once_leave_one_tag_one_row_one_event(project, sme, mle, api_as):
    item = add_item(project, "contested")
    url = reverse("api:item-tags", args=[project.pk, item.pk])
    start = threading.Barrier(2)
    codes = {}

    def work(user):
        try:
            client = api_as(user)
            start.wait()
            codes[user.pk] = client.post(url, {"name": "glare"}, format="json").status_code
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(u,)) for u in (sme, mle)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(codes.values()) == [200, 201]
    assert Tag.objects.filter(project=project).count() == 1
    assert ItemTag.objects.filter(item=item).count() == 1
    assert TagEvent.objects.filter(item=item).count() == 1


def test_tag_list_and_queue_page_queries_do_not_grow(project, items, api_as, client, sme, django_assert_num_queries):
    url = reverse("api:tag-list", args=[project.pk])
    tags.tag_items(project, sme, [items[0].pk], name="one")
    # project_for (2), the tagger's role (1), the tags with their counts (1)
    with django_assert_num_queries(4):
        assert len(api_as(sme).get(url).json()) == 1
    client.force_login(sme)
    queue = reverse("adjudication:queue", args=[project.slug])
    few = len(_queries(client, queue))
    for n in range(5):
        tags.tag_items(project, sme, [i.pk for i in items], name=f"more-{n}")
    with django_assert_num_queries(4):
        assert len(api_as(sme).get(url).json()) == 6
    with django_assert_num_queries(few):  # both queue rows now carry six tags each
        page = client.get(queue)
    assert page.content.decode().count('data-tag="more-4"') == 2


def _queries(client, url):
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        client.get(url)
    return captured.captured_queries
