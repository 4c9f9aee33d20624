"""Item files (image, thumbnail) by role: a labeler fetches only what they were served or labelled,
gold included; SMEs, MLEs and superusers any item of their project; everyone else 404."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from annotation.models import Annotation, Assignment, GoldLabel, Item
from annotation.services import labeling
from annotation.services.item_import import import_items

from .imaging import png_bytes, zip_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def items(project, tmp_path):
    """Six images, three of them gold (g0-g2, o0-o2), by external id without ".png"."""
    manifest = "filename,gold\n" + "".join(f"g{n}.png,crow\n" for n in range(3))
    entries = {f"{kind}{n}.png": png_bytes(10 * n + (kind == "g")) for kind in "og" for n in range(3)}
    path = tmp_path / "birds.zip"
    path.write_bytes(zip_bytes({**entries, "manifest.csv": manifest}))
    import_items(project, path)
    labeling.refresh_queue_state(project)
    found = {i.external_id.removesuffix(".png"): i for i in Item.objects.filter(project=project)}
    assert len(found) == 6 and GoldLabel.objects.filter(item__project=project).count() == 3
    return found


def fetch(client, user, item, kind="image"):
    client.force_login(user)
    response = client.get(reverse("item-file", args=[item.pk, kind]))
    if response.status_code == 200:
        assert b"".join(response.streaming_content).startswith(b"\x89PNG")
    return response.status_code


def test_a_labeler_gets_the_files_of_items_served_to_them_and_nothing_else(client, project, items, labeler):
    served = labeling.next_item(project, labeler).item
    assert fetch(client, labeler, served) == 200
    assert fetch(client, labeler, served, "thumbnail") == 200
    others = [i for i in items.values() if i.pk != served.pk]
    unserved_gold = next(i for i in others if i.external_id.startswith("g"))
    unserved_plain = next(i for i in others if i.external_id.startswith("o"))
    assert fetch(client, labeler, unserved_gold) == 404
    assert fetch(client, labeler, unserved_gold, "thumbnail") == 404
    assert fetch(client, labeler, unserved_plain) == 404


def test_a_labeler_keeps_the_files_of_items_they_labelled_or_skipped(client, project, items, labeler, labeler2):
    first = labeling.next_item(project, labeler).item
    labeling.submit(project, labeler, item_id=first.pk, labels=["crow"], client_id=None)
    second = labeling.next_item(project, labeler).item
    labeling.skip(project, labeler, item_id=second.pk)
    assert set(Assignment.objects.filter(labeler=labeler).values_list("status", flat=True)) == {"done", "skipped"}
    assert fetch(client, labeler, first) == 200 and fetch(client, labeler, second) == 200
    # Another labeler was served neither.
    assert fetch(client, labeler2, first) == 404 and fetch(client, labeler2, second) == 404


def test_an_imported_label_is_enough(client, project, items, labeler):
    Annotation.objects.create(item=items["o1"], labeler=labeler, source="imported")
    assert not Assignment.objects.filter(labeler=labeler).exists()
    assert fetch(client, labeler, items["o1"]) == 200 and fetch(client, labeler, items["o2"]) == 404


def test_smes_mles_and_superusers_get_every_item_outsiders_none(client, project, items, sme, mle, outsider):
    admin = get_user_model().objects.create_superuser("root", password="pw-for-tests-only")
    for item in items.values():
        assert fetch(client, sme, item) == fetch(client, mle, item) == fetch(client, admin, item) == 200
        assert fetch(client, outsider, item) == 404


def test_unknown_kinds_missing_files_and_anonymous_requests(client, project, items, mle, settings):
    assert fetch(client, mle, items["o0"], "secrets") == 404
    (settings.MEDIA_ROOT / items["o0"].image.name).unlink()
    assert fetch(client, mle, items["o0"]) == 404  # the file is gone: not a 500
    client.logout()
    assert client.get(reverse("item-file", args=[items["o1"].pk, "image"])).status_code == 302


def test_the_check_costs_the_same_queries_whoever_asks(client, project, items, labeler, mle, django_assert_num_queries):
    served = labeling.next_item(project, labeler).item
    for user, item in (
        (labeler, served),
        (mle, items["g2"]),
        (labeler, items["g2"] if served != items["g2"] else items["o2"]),
    ):
        client.force_login(user)
        url = reverse("item-file", args=[item.pk, "image"])
        # The session, the user, then the item with the permission check in one query.
        with django_assert_num_queries(3):
            client.get(url)
