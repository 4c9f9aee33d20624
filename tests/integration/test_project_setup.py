"""Setting up a project in the browser: the create, upload, members and item-browser pages, the
last-MLE rule, the project page's stored counts.

Roles: MLEs do everything; SMEs see members and items but get 403 on MLE-only actions; labelers
get the 403 page on staff pages; non-members 404.
"""

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from annotation.errors import DomainError
from annotation.models import (
    Annotation,
    AnnotationLabel,
    GoldLabel,
    GoldLabelClass,
    ImportBatch,
    Item,
    Membership,
    Project,
    ProjectCounts,
    Resolution,
    ResolutionLabel,
)
from annotation.services import project_counts
from annotation.services.projects import add_member, change_role, create_project, remove_member
from frontend import item_browser_views
from tests.conftest import make_user

pytestmark = pytest.mark.django_db

CREATE_URL = reverse("frontend:project-create")


def url(name, project, **query):
    base = reverse(f"frontend:project-{name}", args=[project.slug])
    return base + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


def as_user(client, user):
    client.force_login(user)
    return client


def label(item, user, class_):
    annotation = Annotation.objects.create(item=item, labeler=user)
    AnnotationLabel.objects.create(annotation=annotation, label_class=class_)
    return annotation


def error_next_to(html, field):
    """The error message drawn under `field` (the element with id `<field>-error`), or None."""
    found = re.search(rf'<p class="field__error" id="{re.escape(field)}-error"[^>]*>([^<]*)</p>', html)
    return found.group(1) if found else None


# ---- create a project ----


GOOD = {
    "name": "Street signs",
    "slug": "",
    "description": "",
    "data_kind": "image",
    "task_type": "single_label",
    "classes": "stop = x\nyield\nspeed",
    "ambiguity_classes": "unclear",
    "overlap": "3",
    "consistency_fraction": "0.25",
    "gold_rate": "0.05",
}


def test_an_mle_creates_a_project_with_keys_and_becomes_its_mle(client, mle):
    response = as_user(client, mle).post(CREATE_URL, GOOD)
    assert response.status_code == 302
    project = Project.objects.get(slug="street-signs")
    assert response.url == reverse("frontend:project-detail", args=["street-signs"])
    keys = {c.name: (c.shortcut, c.is_ambiguity) for c in project.label_classes.all()}
    assert keys == {"stop": ("x", False), "yield": ("1", False), "speed": ("2", False), "unclear": ("3", True)}
    assert (project.overlap, project.consistency_fraction, project.tuning.gold_rate) == (3, 0.25, 0.05)
    assert Membership.objects.get(project=project, user=mle).role == "mle"


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"name": ""}, "name", "may not be blank"),
        ({"classes": ""}, "classes", "at least 1"),
        ({"classes": "a\na"}, "classes", "class names repeat: a"),
        ({"classes": "crow\nunclear"}, "classes", "class names repeat: unclear"),
        ({"classes": "crow = u"}, "classes", "belongs to the labeling page"),
        ({"classes": "crow = c\ndove = c"}, "classes", "given to two classes"),
        ({"classes": "cr\u202eow"}, "classes", "U+202E"),
        ({"overlap": "0"}, "overlap", "greater than or equal to 1"),
        ({"overlap": "three"}, "overlap", "valid integer"),
        ({"consistency_fraction": "1.5"}, "consistency_fraction", "less than or equal to 1"),
        ({"gold_rate": "2"}, "gold_rate", "less than or equal to 1"),
        ({"data_kind": "video"}, "data_kind", "not a valid choice"),
        ({"task_type": "boxes"}, "task_type", "not a valid choice"),
        ({"slug": "Not A Slug"}, "slug", "valid"),
        ({"slug": "birds"}, "slug", "already exists"),
    ],
)
def test_create_errors_are_shown_next_to_their_field_and_nothing_is_written(client, mle, change, field, message):
    before = Project.objects.count()
    response = as_user(client, mle).post(CREATE_URL, {**GOOD, **change})
    assert response.status_code == 400
    shown = error_next_to(response.content.decode(), field)
    assert shown is not None and message in shown.replace("&#x27;", "'"), response.content.decode()[:3000]
    assert Project.objects.count() == before
    assert f'value="{GOOD["name"]}"' in response.content.decode() or change.get("name") == ""


def test_only_mles_somewhere_and_staff_create_projects(client, labeler, sme):
    assert as_user(client, labeler).get(CREATE_URL).status_code == 403
    assert as_user(client, sme).post(CREATE_URL, GOOD).status_code == 403
    assert not Project.objects.filter(slug="street-signs").exists()
    staff = make_user("admin-ish")
    staff.is_staff = True
    staff.save()
    assert as_user(client, staff).post(CREATE_URL, GOOD).status_code == 302
    client.logout()
    assert client.get(CREATE_URL).status_code == 302  # to the login page


# ---- upload data ----


@pytest.fixture
def texts(mle):
    project = create_project(slug="reviews-setup", name="Reviews", data_kind="text", classes=["pos", "neg"])
    Membership.objects.create(user=mle, project=project, role="mle")
    return project


CSV = b"external_id,text,gold\nr1,Great film,pos\nr2,Dull,neg\nr3,Fine,\nr4,,pos\nr5,Odd,meh\n"


def upload(client, project, data, name="reviews.csv", kind="items", **extra):
    file = SimpleUploadedFile(name, data)
    return client.post(url("upload", project), {"kind": kind, "file": file, "has_header": "on", **extra})


def test_an_mle_uploads_a_csv_sees_the_row_report_and_a_reupload_adds_nothing(client, mle, texts):
    as_user(client, mle).get(reverse("frontend:project-detail", args=[texts.slug]))  # counts stored: 0 items
    response = upload(client, texts, CSV)
    assert response.status_code == 302
    batch = ImportBatch.objects.get(project=texts)
    assert response.url == url("upload", texts, batch=batch.pk)
    assert (batch.created_count, batch.rejected_count) == (3, 2)
    page = client.get(response.url).content.decode()
    assert 'data-testid="upload-report"' in page
    assert "Error report: 2 rejected rows" in page and "meh" in page
    # The upload marked the stored counts stale: the project page shows the new items at once.
    detail = client.get(reverse("frontend:project-detail", args=[texts.slug]))
    assert detail.context["item_counts"]["total"] == 3

    again = upload(client, texts, CSV)
    assert again.status_code == 302
    second = ImportBatch.objects.filter(project=texts).latest("created_at")
    assert (second.created_count, second.skipped_count) == (0, 3)
    assert Item.objects.filter(project=texts).count() == 3


def test_a_label_studio_export_uploaded_on_the_page_lands_with_its_labels(client, mle, texts):
    import json

    from annotation.models import Annotation as Ann

    tasks = [
        {
            "id": 1,
            "data": {"text": "Loved it"},
            "annotations": [
                {
                    "completed_by": {"username": "ann"},
                    "result": [
                        {"type": "choices", "from_name": "sentiment", "to_name": "text", "value": {"choices": ["pos"]}}
                    ],
                }
            ],
        },
        {"id": 2, "data": {"text": "Hated it"}, "annotations": []},
    ]
    response = upload(as_user(client, mle), texts, json.dumps(tasks).encode(), name="export.json", kind="label_studio")
    assert response.status_code == 302, response.content.decode()[-2000:]
    batch = ImportBatch.objects.get(project=texts)
    assert batch.kind == "labelstudio" and Item.objects.filter(project=texts).count() == 2
    assert list(Ann.objects.filter(item__project=texts).values_list("labels__name", flat=True)) == ["pos"]


@pytest.mark.parametrize(
    ("name", "data", "kind", "message"),
    [
        ("empty.csv", b"", "items", "is empty"),
        ("notes.txt", b"hello", "items", "a text project imports a .csv or .jsonl file"),
        ("tasks.json", b"[]", "items", "holds no tasks"),
        ("tasks.json", b"[]", "label_studio", "holds no tasks"),
        ("no-text.csv", b"external_id,words\nr1,hi\n", "items", "text"),
    ],
)
def test_bad_uploads_are_refused_next_to_the_file_field(client, mle, texts, name, data, kind, message):
    response = upload(as_user(client, mle), texts, data, name=name, kind=kind)
    assert response.status_code == 400
    shown = error_next_to(response.content.decode(), "file")
    assert shown is not None and message in shown, response.content.decode()[-4000:]
    assert not ImportBatch.objects.filter(project=texts).exists()


def test_unknown_upload_kind_is_a_400(client, mle, texts):
    response = upload(as_user(client, mle), texts, CSV, kind="parquet")
    assert response.status_code == 400
    assert "choose one of" in error_next_to(response.content.decode(), "kind")


def test_an_mle_uploads_existing_labels_with_a_gold_file(client, mle, texts):
    as_user(client, mle)
    upload(client, texts, CSV)
    labels = b"item,labeler,label\nr1,w1,pos\nr1,w2,neg\nr2,w1,neg\n"
    truth = SimpleUploadedFile("truth.csv", b"item,label\nr3,pos\n")
    response = upload(client, texts, labels, name="crowd.csv", kind="annotations", truth=truth)
    assert response.status_code == 302, response.content.decode()[-3000:]
    batch = ImportBatch.objects.get(project=texts, kind="annotations")
    assert batch.created_count == 3
    assert GoldLabel.objects.filter(item__project=texts, item__external_id="r3").exists()
    assert Annotation.objects.filter(item__project=texts, is_current=True).count() == 3


def test_upload_roles(client, texts, mle):
    sme, lab, outsider = make_user("s"), make_user("l"), make_user("o")
    Membership.objects.create(user=sme, project=texts, role="sme")
    Membership.objects.create(user=lab, project=texts, role="labeler")
    for user, status in [(sme, 403), (lab, 403), (outsider, 404)]:
        as_user(client, user)
        assert client.get(url("upload", texts)).status_code == status
        assert upload(client, texts, CSV).status_code == status
    assert not Item.objects.filter(project=texts).exists()


# ---- members ----


def test_members_list_add_create_role_remove(client, project, mle, sme, labeler):
    page = as_user(client, mle).get(url("members", project))
    assert page.status_code == 200
    assert [m.user.username for m in page.context["members"]] == ["lab1", "mle", "sme"]

    make_user("erin")
    assert client.post(url("members", project), {"action": "add", "username": "erin", "role": "sme"}).status_code == 302
    assert Membership.objects.get(project=project, user__username="erin").role == "sme"

    created = client.post(url("members", project), {"action": "create", "username": "newbie", "role": "labeler"})
    assert created.status_code == 200
    assert created["Cache-Control"] == "no-store"
    password = created.context["created"]["password"]
    assert len(password) >= 20 and password in created.content.decode()
    user = get_user_model().objects.get(username="newbie")
    assert user.check_password(password)
    assert Membership.objects.get(project=project, user=user).role == "labeler"
    assert password not in client.get(url("members", project)).content.decode()  # shown once

    assert (
        client.post(url("members", project), {"action": "role", "username": "newbie", "role": "sme"}).status_code == 302
    )
    assert Membership.objects.get(project=project, user=user).role == "sme"
    assert client.post(url("members", project), {"action": "remove", "username": "newbie"}).status_code == 302
    assert not Membership.objects.filter(project=project, user=user).exists()
    assert get_user_model().objects.filter(username="newbie").exists()  # the account stays


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"action": "add", "username": "ghost", "role": "labeler"}, "add-password", "there is no user 'ghost'"),
        ({"action": "add", "username": "outsider", "role": "labeler"}, "add-password", "there is no user"),
        ({"action": "add", "username": "lab1", "role": "boss"}, "add-role", "not a valid choice"),
        ({"action": "create", "username": "bad name!", "role": "labeler"}, "create-username", "valid username"),
        ({"action": "create", "username": "lab1", "role": "labeler"}, "create-username", "is taken"),
        ({"action": "create", "username": "", "role": "labeler"}, "create-username", "may not be blank"),
        ({"action": "role", "username": "mle", "role": "sme"}, "role", "last MLE"),
        ({"action": "remove", "username": "mle"}, "remove", "last MLE"),
    ],
)
def test_member_errors_are_shown_next_to_their_field(client, project, mle, labeler, outsider, data, field, message):
    response = as_user(client, mle).post(url("members", project), data)
    assert response.status_code == 400
    shown = error_next_to(response.content.decode(), field)
    assert shown is not None and message in shown.replace("&#x27;", "'"), response.content.decode()[-5000:]
    assert Membership.objects.get(project=project, user=mle).role == "mle"
    assert not get_user_model().objects.filter(username__in=["ghost", "bad name!", ""]).exists()


def test_sme_sees_members_but_changes_nothing_labeler_403_outsider_404(client, project, mle, sme, labeler, outsider):
    assert as_user(client, sme).get(url("members", project)).status_code == 200
    body = {"action": "role", "username": "lab1", "role": "mle"}
    assert client.post(url("members", project), body).status_code == 403
    assert client.post(url("members", project), {"action": "create", "username": "x", "role": "mle"}).status_code == 403
    assert as_user(client, labeler).get(url("members", project)).status_code == 403
    assert as_user(client, outsider).get(url("members", project)).status_code == 404
    assert as_user(client, outsider).post(url("members", project), body).status_code == 404
    assert Membership.objects.get(project=project, user=labeler).role == "labeler"
    assert not get_user_model().objects.filter(username="x").exists()


def test_a_project_never_loses_its_last_mle(project, mle, labeler):
    with pytest.raises(DomainError, match="last MLE"):
        change_role(project, username="mle", role="labeler")
    with pytest.raises(DomainError, match="last MLE"):
        remove_member(project, username="mle")
    with pytest.raises(DomainError, match="last MLE"):  # the API's add-again-with-another-role path
        add_member(project, username="mle", role="sme")
    assert Membership.objects.get(project=project, user=mle).role == "mle"
    # With a second MLE, either may step down, but not both.
    change_role(project, username="lab1", role="mle")
    change_role(project, username="mle", role="sme")
    with pytest.raises(DomainError, match="last MLE"):
        remove_member(project, username="lab1")
    assert list(Membership.objects.filter(project=project, role="mle").values_list("user__username", flat=True)) == [
        "lab1"
    ]


def test_the_api_refuses_to_demote_the_last_mle(api_as, project, mle):
    response = api_as(mle).post(
        reverse("api:member-list", args=[project.pk]), {"username": "mle", "role": "sme"}, format="json"
    )
    assert response.status_code == 400 and "last MLE" in str(response.data["role"])


# ---- item browser ----


@pytest.fixture
def statuses(project, labeler, labeler2, sme):
    """One item of each status, in id order: unlabelled, partly, complete, disputed, resolved, and
    a gold item complete (gold 'owl') with a slice and a source."""
    crow, dove, owl = (project.label_classes.get(name=n) for n in ("crow", "dove", "owl"))
    items = {
        name: Item.objects.create(project=project, external_id=name, split=split, **extra)
        for name, split, extra in [
            ("unlabelled", "train", {}),
            ("partly", "train", {"in_consistency_sample": True}),
            ("complete", "dev", {}),
            ("disputed", "train", {}),
            ("resolved", "test", {}),
            ("gold", "train", {"metadata": {"noise": "car"}, "source_name": "batch-a.zip"}),
        ]
    }
    label(items["partly"], labeler, crow)
    label(items["complete"], labeler, dove)
    label(items["disputed"], labeler, crow)
    label(items["disputed"], labeler2, dove)
    label(items["resolved"], labeler, crow)
    label(items["resolved"], labeler2, dove)
    resolution = Resolution.objects.create(item=items["resolved"], decided_by=sme)
    ResolutionLabel.objects.create(resolution=resolution, label_class=dove)
    gold = GoldLabel.objects.create(item=items["gold"])
    GoldLabelClass.objects.create(gold=gold, label_class=owl)
    for user in (labeler, labeler2, sme):
        label(items["gold"], user, owl)
    ImportBatch.objects.create(project=project, kind="images", source_name="batch-a.zip")
    return items


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, ["unlabelled", "partly", "complete", "disputed", "resolved", "gold"]),
        ({"status": "unlabelled"}, ["unlabelled"]),
        ({"status": "partly"}, ["partly"]),
        ({"status": "complete"}, ["complete", "gold"]),
        ({"status": "disputed"}, ["disputed"]),
        ({"status": "resolved"}, ["resolved"]),
        ({"split": "train"}, ["unlabelled", "partly", "disputed", "gold"]),
        ({"label": "dove"}, ["resolved"]),
        ({"label": "owl"}, ["gold"]),
        ({"gold": "yes"}, ["gold"]),
        ({"gold": "no", "split": "test"}, ["resolved"]),
        ({"source": "batch-a.zip"}, ["gold"]),
        ({"slice": "noise=car"}, ["gold"]),
        ({"slice": "noise=bus"}, []),
        ({"q": "disp"}, ["disputed"]),
    ],
)
def test_item_browser_filters(client, project, mle, statuses, query, expected):
    response = as_user(client, mle).get(url("items", project, **query))
    assert response.status_code == 200
    assert [i.external_id for i in response.context["items"]] == expected


def test_item_browser_tiles_show_status_final_label_and_link_to_the_item(client, project, sme, statuses):
    response = as_user(client, sme).get(url("items", project))
    tiles = {i.external_id: (i.status, i.final_label, i.n_labels, i.needed) for i in response.context["items"]}
    assert tiles["resolved"] == ("resolved", "dove", 2, 1)
    assert tiles["gold"] == ("complete", "owl", 3, 3)
    assert tiles["partly"] == ("partly", None, 1, 3)
    html = response.content.decode()
    item = statuses["disputed"]
    assert reverse("adjudication:item", args=[project.slug, item.pk]) in html


def test_text_items_are_searched_by_their_text(client, texts, mle):
    Item.objects.create(project=texts, external_id="t1", split="train", text="A grey heron at dawn")
    Item.objects.create(project=texts, external_id="t2", split="train", text="Sparrows")
    response = as_user(client, mle).get(url("items", texts, q="HERON"))
    assert [i.external_id for i in response.context["items"]] == ["t1"]
    assert "A grey heron at dawn" in response.content.decode()


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ({"status": "done"}, "status"),
        ({"split": "val"}, "split"),
        ({"label": "eagle"}, "label"),
        ({"gold": "maybe"}, "gold"),
        ({"slice": "nokey"}, "slice"),
        ({"after": "abc"}, "after"),
        ({"before": "-3"}, "before"),
        ({"q": "x" * 201}, "q"),
    ],
)
def test_bad_item_filters_are_a_400_naming_the_filter(client, project, mle, statuses, query, name):
    response = as_user(client, mle).get(url("items", project, **query))
    assert response.status_code == 400
    assert f'data-error-for="{name}"' in response.content.decode()


def test_item_browser_roles(client, project, labeler, outsider, mle):
    assert as_user(client, labeler).get(url("items", project)).status_code == 403
    assert as_user(client, outsider).get(url("items", project)).status_code == 404
    assert as_user(client, mle).get(url("items", project)).status_code == 200


def _add_items(project, n, start=0):
    Item.objects.bulk_create(
        Item(project=project, external_id=f"bulk-{start + i:05d}", split="train") for i in range(n)
    )


def test_keyset_pages_walk_every_item_once_both_ways(client, project, mle):
    page_size = item_browser_views.PAGE_SIZE
    _add_items(project, page_size * 2 + 5)
    as_user(client, mle)
    seen, pages, query = [], [], ""
    while True:
        response = client.get(url("items", project) + query)
        ids = [i.external_id for i in response.context["items"]]
        seen += ids
        pages.append(ids)
        if not response.context["next_query"]:
            break
        query = "?" + response.context["next_query"]
    assert [len(p) for p in pages] == [page_size, page_size, 5]
    assert seen == sorted(seen) and len(set(seen)) == page_size * 2 + 5
    back = client.get(url("items", project) + "?" + response.context["previous_query"])
    assert [i.external_id for i in back.context["items"]] == pages[1]
    assert "OFFSET" not in _page_sql(client, url("items", project) + query)


def _page_sql(client, page_url):
    with CaptureQueriesContext(connection) as ctx:
        client.get(page_url)
    return " ".join(q["sql"] for q in ctx.captured_queries).upper()


def _count_queries(client, page_url):
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(page_url).status_code == 200
    return len(ctx)


def test_item_browser_query_count_does_not_grow_with_the_project(client, project, mle, labeler, statuses):
    as_user(client, mle)
    small = _count_queries(client, url("items", project, status="complete"))
    _add_items(project, 300)
    crow = project.label_classes.get(name="crow")
    for item in Item.objects.filter(project=project, external_id__startswith="bulk-")[:60]:
        label(item, labeler, crow)
    assert _count_queries(client, url("items", project, status="complete")) == small
    assert _count_queries(client, url("items", project)) == small
    # session, user, project, role, classes, sources, the page of items, the project's tags (the
    # filter and the bulk form), the tags of the page's items
    assert small == 9


def test_project_page_reads_stored_counts_with_a_fixed_number_of_queries(client, project, mle, labeler):
    as_user(client, mle)
    detail = reverse("frontend:project-detail", args=[project.slug])
    client.get(detail)  # counts stored now
    few = _count_queries(client, detail)
    _add_items(project, 200)
    crow = project.label_classes.get(name="crow")
    for item in Item.objects.filter(project=project)[:50]:
        label(item, labeler, crow)
    assert _count_queries(client, detail) == few
    # Labels do not mark the counts stale: they show once the stored row is older than MAX_AGE.
    assert client.get(detail).context["item_counts"]["total"] == 0
    ProjectCounts.objects.filter(project=project).update(
        computed_at=ProjectCounts.objects.get(project=project).computed_at
        - project_counts.MAX_AGE
        - timedelta(seconds=1)
    )
    counts = client.get(detail).context
    assert counts["item_counts"]["total"] == 200
    assert counts["annotation_counts"]["labelled_items"] == 50
    assert [r["labeler__username"] for r in counts["labeler_rows"]] == ["lab1"]


def test_project_page_links_by_role(client, project, mle, sme, labeler):
    detail = reverse("frontend:project-detail", args=[project.slug])
    mle_page = as_user(client, mle).get(detail).content.decode()
    for link in ("upload", "members", "items"):
        assert url(link, project) in mle_page
    sme_page = as_user(client, sme).get(detail).content.decode()
    assert url("items", project) in sme_page and url("members", project) in sme_page
    assert url("upload", project) not in sme_page
    labeler_page = as_user(client, labeler).get(detail).content.decode()
    assert not any(url(link, project) in labeler_page for link in ("upload", "members", "items"))


@pytest.mark.parametrize(("gold_rate", "served_first"), [(0.0, "plain"), (1.0, "gold")])
def test_a_projects_own_gold_rate_decides_what_its_labelers_are_served(api_as, gold_rate, served_first):
    from annotation.models import GoldLabel, GoldLabelClass

    project = create_project(
        slug=f"rate-{int(gold_rate)}", name="Rate", data_kind="text", classes=["pos", "neg"], gold_rate=gold_rate
    )
    _plain, golden = (
        Item.objects.create(project=project, external_id=n, split="train", text=n) for n in ("plain", "gold")
    )
    truth = GoldLabel.objects.create(item=golden)
    GoldLabelClass.objects.create(gold=truth, label_class=project.label_classes.get(name="pos"))
    labeler = make_user("rate-labeler")
    Membership.objects.create(user=labeler, project=project, role="labeler")
    served = api_as(labeler).get(reverse("api:next-item", args=[project.pk]))
    assert served.status_code == 200 and served.json()["text"] == served_first


def test_the_project_list_offers_new_project_to_those_who_may_create_one(client, mle, labeler):
    assert 'data-testid="new-project"' in as_user(client, mle).get(reverse("frontend:project-list")).content.decode()
    page = as_user(client, labeler).get(reverse("frontend:project-list")).content.decode()
    assert 'data-testid="new-project"' not in page
    assert client.get(reverse("frontend:project-create")).status_code == 403
