"""The Foundation's browser pages: login, project list, project page.

Who sees what (members only; labelers label blind), escaping of user data, and a query count
that does not grow with the number of projects, items, classes or labelers.
"""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from annotation.models import (
    Annotation,
    AnnotationLabel,
    GoldLabel,
    GoldLabelClass,
    ImportBatch,
    Item,
    LabelClass,
    Membership,
)
from annotation.services.projects import create_project
from tests.conftest import make_user

LIST_URL = "/"
BIRDS_URL = "/projects/birds/"
XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'
XSS_ESCAPED = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;"


def label(item, user, class_, **fields):
    annotation = Annotation.objects.create(item=item, labeler=user, **fields)
    AnnotationLabel.objects.create(annotation=annotation, label_class=class_)
    return annotation


def gold(item, class_):
    g = GoldLabel.objects.create(item=item)
    GoldLabelClass.objects.create(gold=g, label_class=class_)
    return g


@pytest.fixture
def birds(project, labeler, labeler2, sme, mle):
    """Six items over the splits, one gold, labels by both labelers, an import with errors."""
    crow, dove = project.label_classes.get(name="crow"), project.label_classes.get(name="dove")
    batch = ImportBatch.objects.create(
        project=project,
        kind="images",
        source_name="birds-2024.zip",
        created_by=mle,
        created_count=6,
        skipped_count=1,
        rejected_count=2,
        errors=[
            {"row": 3, "field": "file", "message": "cannot identify image file 'broken.png'"},
            {"row": 9, "field": "gold", "message": "unknown label 'eagle'", "file": "truth.csv"},
        ],
        summary={"labelers": 176, "labels": 24945, "classes": ["crow", "dove"], "skipped_examples": [{"row": 4}]},
    )
    items = [
        Item.objects.create(project=project, external_id=f"bird-{i}", split=split, import_batch=batch, **extra)
        for i, (split, extra) in enumerate(
            [
                ("train", {}),
                ("train", {"in_consistency_sample": True}),
                ("train", {}),
                ("dev", {}),
                ("test", {"in_consistency_sample": True}),
                ("test", {}),
            ]
        )
    ]
    gold(items[0], crow)
    label(items[0], labeler, crow)
    label(items[0], labeler2, dove, note="looks like a dove to me")
    label(items[1], labeler2, dove, unsure=True)
    return project


def login(client, user):
    client.force_login(user)
    return client


# ---- Login and logout ----


@pytest.mark.django_db
@pytest.mark.parametrize("url", [LIST_URL, BIRDS_URL, "/projects/no-such-project/"])
def test_pages_need_a_login(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={url}"


@pytest.mark.django_db
def test_login_page_has_the_form_and_brand(client):
    response = client.get(reverse("login"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Concord" in html
    assert 'name="username"' in html and 'name="password"' in html
    assert 'autocomplete="current-password"' in html
    assert "csrfmiddlewaretoken" in html


def test_login_shows_the_error_and_keeps_the_username(client, mle):
    response = client.post(reverse("login"), {"username": "mle", "password": "wrong"})
    assert response.status_code == 200
    html = response.content.decode()
    assert 'role="alert"' in html
    assert "Please enter a correct username and password" in html
    assert 'value="mle"' in html
    assert "_auth_user_id" not in client.session


def test_login_goes_to_the_project_list(client, mle):
    response = client.post(reverse("login"), {"username": "mle", "password": "pw-for-tests-only"})
    assert response.status_code == 302
    assert response["Location"] == LIST_URL


def test_logout_is_a_post_form(client, mle):
    login(client, mle)
    html = client.get(LIST_URL).content.decode()
    assert f'<form method="post" action="{reverse("logout")}">' in html
    response = client.post(reverse("logout"))
    assert response.status_code == 302
    assert response["Location"] == reverse("login")
    assert client.get(LIST_URL).status_code == 302


# ---- Project list ----


def test_list_shows_only_the_members_projects_with_role_and_counts(client, birds, labeler, outsider):
    response = login(client, labeler).get(LIST_URL)
    assert response.status_code == 200
    projects = response.context["projects"]
    assert [p.slug for p in projects] == ["birds"]
    birds_row = projects[0]
    assert (birds_row.n_items, birds_row.n_labelled, birds_row.n_classes) == (6, 2, 4)
    assert birds_row.user_role == "labeler"
    html = response.content.decode()
    assert 'data-project="birds"' in html and 'data-project="reviews"' not in html
    assert "Labeler" in html

    response = login(client, outsider).get(LIST_URL)
    assert [p.slug for p in response.context["projects"]] == ["reviews"]
    assert "Birds" not in response.content.decode()


def test_list_counts_only_active_classes_and_current_annotations(client, birds, labeler, mle):
    crow = birds.label_classes.get(name="crow")
    owl = birds.label_classes.get(name="owl")
    owl.is_active = False
    owl.merged_into = crow
    owl.save()
    old = Annotation.objects.get(item__external_id="bird-1")
    old.is_current = False
    old.save()
    label(Item.objects.get(external_id="bird-5"), labeler, crow, is_current=False)
    row = login(client, mle).get(LIST_URL).context["projects"][0]
    assert (row.n_items, row.n_labelled, row.n_classes) == (6, 1, 3)


def test_list_for_a_user_without_projects_says_so(client, db):
    html = login(client, make_user("nobody")).get(LIST_URL).content.decode()
    assert "No projects yet" in html


def test_superuser_sees_every_project_as_admin(client, birds, other_project):
    from django.contrib.auth import get_user_model

    root = get_user_model().objects.create_superuser("root", "root@example.com", "pw-for-tests-only")
    response = login(client, root).get(LIST_URL)
    assert [p.slug for p in response.context["projects"]] == ["birds", "reviews"]
    assert all(p.role_label == "Admin" for p in response.context["projects"])
    assert login(client, root).get(BIRDS_URL).context["oversees"] is True


# ---- Project page ----


def test_non_member_gets_404(client, birds, outsider):
    assert login(client, outsider).get(BIRDS_URL).status_code == 404


def test_unknown_project_gets_404(client, mle):
    assert login(client, mle).get("/projects/nope/").status_code == 404


def test_mle_sees_settings_classes_counts_gold_labelers_and_imports(client, birds, mle):
    crow = birds.label_classes.get(name="crow")
    LabelClass.objects.create(project=birds, name="raven", order=9, is_active=False, merged_into=crow)
    LabelClass.objects.create(project=birds, name="pigeon", order=10, is_active=False)
    response = login(client, mle).get(BIRDS_URL)
    assert response.status_code == 200
    ctx = response.context
    assert ctx["oversees"] is True
    assert ctx["item_counts"] == {"total": 6, "train": 3, "dev": 1, "test": 2, "consistency": 2, "gold": 1}
    assert ctx["annotation_counts"] == {"annotations": 3, "labelled_items": 2, "labelers": 2, "mine": 0}
    assert [r["labeler__username"] for r in ctx["labeler_rows"]] == ["lab2", "lab1"]
    assert [r["unsure"] for r in ctx["labeler_rows"]] == [1, 0]
    html = response.content.decode()
    # Settings.
    assert "Single label" in html and "Image" in html
    assert "<dt>Overlap" in html and "<dd>3</dd>" in html
    assert "20% of items" in html
    assert "80%" in html and "10%" in html
    # Classes: keys as keycaps, the ambiguity class, merged and inactive ones marked.
    assert '<kbd class="keycap">1</kbd>' in html
    assert "Ambiguity" in html
    assert "Merged into crow" in html
    assert "Inactive" in html
    # Gold and the import report.
    assert 'data-stat="gold"' in html
    assert "birds-2024.zip" in html
    assert "<details" in html and "unknown label &#x27;eagle&#x27;" in html and "in truth.csv" in html
    assert "<dt>Labelers</dt><dd>176</dd>" in html and "<dd>24,945</dd>" in html and "<dd>crow, dove</dd>" in html
    assert "Skipped examples" not in html
    assert "lab1" in html and "lab2" in html


def test_labeler_sees_no_gold_no_other_labels_and_no_import_reports(client, birds, labeler):
    response = login(client, labeler).get(BIRDS_URL)
    assert response.status_code == 200
    ctx = response.context
    assert ctx["oversees"] is False
    assert "gold" not in ctx["item_counts"]
    assert "labeler_rows" not in ctx and "batches" not in ctx
    assert not any(hasattr(item, "has_gold") for item in ctx["preview"])
    html = response.content.decode().lower()
    assert "gold" not in html
    assert "lab2" not in html
    assert "dove to me" not in html
    assert "birds-2024.zip" not in html and "eagle" not in html
    assert 'data-testid="blind-notice"' in html
    # Their own progress is theirs to see.
    assert ctx["annotation_counts"]["mine"] == 1


def test_sme_sees_gold(client, birds, sme):
    response = login(client, sme).get(BIRDS_URL)
    assert response.context["oversees"] is True
    assert response.context["item_counts"]["gold"] == 1


def test_text_project_shows_truncated_texts(client, outsider, other_project):
    Item.objects.create(project=other_project, external_id="r1", split="train", text="great " * 200)
    Item.objects.create(project=other_project, external_id="r2", split="train", text="")
    response = login(client, outsider).get("/projects/reviews/")
    html = response.content.decode()
    assert "great great" in html
    assert "great " * 60 not in html
    assert "…" in html
    assert "(no text)" in html


def test_image_project_shows_thumbnails(client, birds, mle):
    from django.core.files.base import ContentFile

    item = Item.objects.get(external_id="bird-0")
    item.thumbnail.save("bird-0.png", ContentFile(b"\x89PNG fake"), save=True)
    html = login(client, mle).get(BIRDS_URL).content.decode()
    # Through the members-only file view, never a public media URL.
    assert f'<img src="{reverse("item-file", args=[item.pk, "thumbnail"])}"' in html
    assert item.thumbnail.url not in html


# ---- Escaping ----


@pytest.mark.parametrize("role_fixture", ["mle", "labeler"])
def test_user_data_is_escaped(client, request, role_fixture):
    user = request.getfixturevalue(role_fixture)
    project = user.memberships.get().project
    project.name = f"Birds {XSS}"
    project.description = f"About {XSS}"
    project.save()
    LabelClass.objects.create(project=project, name=f"c {XSS}", order=20)
    Item.objects.create(project=project, external_id=f"id {XSS}", split="train")
    ImportBatch.objects.create(
        project=project,
        kind="images",
        source_name=f"src {XSS}",
        rejected_count=1,
        errors=[{"row": 1, "field": XSS, "message": f"bad {XSS}", "file": XSS}],
        summary={"classes": [XSS], "source": XSS},
    )
    text_project = create_project(slug="texts", name="Texts", data_kind="text", classes=["a"])
    # An SME there: item previews (the text snippets checked below) are for SMEs and MLEs only.
    Membership.objects.create(user=user, project=text_project, role="sme")
    Item.objects.create(project=text_project, external_id="t1", split="train", text=f"text {XSS}")

    login(client, user)
    for url in [LIST_URL, BIRDS_URL, "/projects/texts/"]:
        html = client.get(url).content.decode()
        assert "<script>alert" not in html, url
        assert "<img src=x" not in html, url
        assert "onerror=alert(1)>" not in html, url
    assert XSS_ESCAPED in client.get(LIST_URL).content.decode()
    birds_html = client.get(BIRDS_URL).content.decode()
    assert birds_html.count(XSS_ESCAPED) >= 4  # title/breadcrumb/heading, description, class, item id
    assert XSS_ESCAPED in client.get("/projects/texts/").content.decode()


# ---- Query counts ----


def _add_projects(user, slugs, role="mle"):
    for slug in slugs:
        p = create_project(slug=slug, name=slug.upper(), data_kind="image", classes=["a", "b"], ambiguity_classes=["?"])
        Membership.objects.create(user=user, project=p, role=role)
        items = Item.objects.bulk_create(Item(project=p, external_id=f"x{j}", split="train") for j in range(5))
        label(items[0], user, p.label_classes.first())


def _queries(client, url):
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx)


def test_project_list_query_count_is_bounded(client, mle, django_assert_max_num_queries):
    login(client, mle)
    _add_projects(mle, ["p0"])
    one = _queries(client, LIST_URL)
    _add_projects(mle, [f"p{i}" for i in range(1, 8)], role="labeler")
    with django_assert_max_num_queries(3):  # session, user, projects with their counts
        response = client.get(LIST_URL)
    counts = {p.slug: (p.n_items, p.n_labelled, p.n_classes) for p in response.context["projects"]}
    assert counts == {"birds": (0, 0, 4), **{f"p{i}": (5, 1, 3) for i in range(8)}}
    assert _queries(client, LIST_URL) == one


def test_project_page_query_count_is_bounded(client, birds, mle, labeler, django_assert_max_num_queries):
    login(client, mle)
    client.get(BIRDS_URL)  # stores the project's counts row; later views read it
    small = _queries(client, BIRDS_URL)
    crow = birds.label_classes.get(name="crow")
    LabelClass.objects.bulk_create(LabelClass(project=birds, name=f"extra{i}", order=10 + i) for i in range(12))
    items = Item.objects.bulk_create(
        Item(project=birds, external_id=f"more-{i}", split="train", text="t") for i in range(40)
    )
    for i in range(6):
        user = make_user(f"worker{i}")
        Membership.objects.create(user=user, project=birds, role="labeler")
        for item in items[i : i + 5]:
            label(item, user, crow)
    for item in items[:10]:
        gold(item, crow)
    for i in range(3):
        ImportBatch.objects.create(
            project=birds, kind="texts", source_name=f"f{i}.csv", errors=[{"row": 1, "message": "bad"}]
        )
    # session, user, project with its counts row, classes, own label count, team, preview items,
    # import batches (the counts row is older than a view and so may be recounted: at most 10).
    with django_assert_max_num_queries(10):
        assert client.get(BIRDS_URL).status_code == 200
    assert _queries(client, BIRDS_URL) == small
    login(client, labeler)
    with django_assert_max_num_queries(8):  # no per-labeler rows, no import batches
        assert client.get(BIRDS_URL).status_code == 200
