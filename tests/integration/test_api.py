import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from annotation.models import ImportBatch, Item, Membership, Project

from ..conftest import make_user
from .imaging import png_bytes, zip_bytes

pytestmark = pytest.mark.django_db


def upload(client, project, name, data, **extra):
    from django.core.files.uploadedfile import SimpleUploadedFile

    url = reverse("api:import-list", args=[project.pk])
    return client.post(url, {"file": SimpleUploadedFile(name, data)}, format="multipart", **extra)


def test_token_auth_round_trip(mle, project):
    client = APIClient()
    response = client.post(reverse("api:auth-token"), {"username": "mle", "password": "pw-for-tests-only"})
    assert response.status_code == 200
    client.credentials(HTTP_AUTHORIZATION=f"Token {response.data['token']}")
    listed = client.get(reverse("api:project-list"))
    assert [p["slug"] for p in listed.data["results"]] == ["birds"]
    wrong = APIClient().post(reverse("api:auth-token"), {"username": "mle", "password": "nope"})
    assert wrong.status_code == 400


def test_anonymous_gets_401(project):
    assert APIClient().get(reverse("api:project-list")).status_code == 401


def test_project_list_is_scoped_and_shows_role_and_counts(api_as, labeler, outsider, project, other_project):
    Item.objects.create(project=project, external_id="a", split="train")
    data = api_as(labeler).get(reverse("api:project-list")).data["results"]
    assert [(p["slug"], p["role"], p["item_count"]) for p in data] == [("birds", "labeler", 1)]
    assert [c["name"] for c in data[0]["classes"]] == ["crow", "dove", "owl", "unclear"]
    assert [c["shortcut"] for c in data[0]["classes"]] == ["1", "2", "3", "4"]
    assert [p["slug"] for p in api_as(outsider).get(reverse("api:project-list")).data["results"]] == ["reviews"]


def test_project_list_query_count_does_not_grow_with_projects(api_as, mle, django_assert_num_queries):
    from annotation.services.projects import create_project

    for i in range(5):
        p = create_project(slug=f"p{i}", name=f"P{i}", data_kind="text", classes=["a", "b", "c"])
        Membership.objects.create(user=mle, project=p, role="mle")
        Item.objects.bulk_create(Item(project=p, external_id=str(j), split="train") for j in range(3))
    client = api_as(mle)
    # count + projects (with item counts and role) + their classes; the session user is forced.
    with django_assert_num_queries(3):
        assert len(client.get(reverse("api:project-list")).data["results"]) == 6


def test_mle_creates_project_and_becomes_its_mle(api_as, mle):
    response = api_as(mle).post(
        reverse("api:project-list"),
        {
            "name": "Scratches",
            "slug": "scratches",
            "data_kind": "image",
            "classes": ["deep", "shallow"],
            "ambiguity_classes": ["unclear"],
            "overlap": 3,
            "consistency_fraction": 0.25,
        },
        format="json",
    )
    assert response.status_code == 201, response.data
    assert response.data["role"] == "mle" and response.data["overlap"] == 3
    assert [(c["name"], c["is_ambiguity"]) for c in response.data["classes"]] == [
        ("deep", False),
        ("shallow", False),
        ("unclear", True),
    ]
    assert Membership.objects.get(project__slug="scratches").user == mle


@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        ({"classes": []}, "classes", "Ensure this field has at least 1 elements."),
        ({"classes": ["a", "a"]}, "classes", "class names repeat: a"),
        ({"overlap": 0}, "overlap", "Ensure this value is greater than or equal to 1."),
        ({"slug": "birds"}, "slug", "a project with slug 'birds' already exists"),
        ({"train_fraction": 0.5}, "split_fractions", "split fractions must be non-negative and sum to 1"),
        ({"data_kind": "video"}, "data_kind", '"video" is not a valid choice.'),
    ],
)
def test_project_create_rejects_bad_input_by_field(api_as, mle, payload, field, message):
    body = {"name": "X", "slug": "x", "data_kind": "text", "classes": ["a", "b"], **payload}
    response = api_as(mle).post(reverse("api:project-list"), body, format="json")
    assert response.status_code == 400
    assert message in str(response.data[field])
    assert not Project.objects.filter(slug="x").exists()


def test_labeler_cannot_create_projects(api_as, labeler):
    body = {"name": "X", "slug": "x", "data_kind": "text", "classes": ["a"]}
    assert api_as(labeler).post(reverse("api:project-list"), body, format="json").status_code == 403


def test_upload_import_as_mle(api_as, mle, project):
    archive = zip_bytes({"a.png": png_bytes(1), "b.png": png_bytes(2), "bad.png": b"x"})
    response = upload(api_as(mle), project, "batch.zip", archive)
    assert response.status_code == 201
    assert (response.data["created_count"], response.data["rejected_count"]) == (2, 1)
    assert response.data["errors"][0]["row"] == "bad.png"
    assert response.data["created_by"] == "mle"
    again = upload(api_as(mle), project, "batch.zip", archive)
    assert (again.data["created_count"], again.data["skipped_count"]) == (0, 2)
    assert Item.objects.filter(project=project).count() == 2


def test_upload_rejects_empty_oversized_and_wrong_kind(api_as, mle, project, settings):
    client = api_as(mle)
    empty = upload(client, project, "empty.zip", b"")
    assert empty.status_code == 400 and "The submitted file is empty." in str(empty.data["file"])
    wrong = upload(client, project, "notes.csv", b"a,b\n1,2\n")
    assert wrong.status_code == 400
    assert "an image project imports a folder or a .zip" in str(wrong.data["file"])
    settings.CONCORD_IMPORT = {**settings.CONCORD_IMPORT, "MAX_UPLOAD_BYTES": 10}
    big = upload(client, project, "big.zip", zip_bytes({"a.png": png_bytes(1)}))
    assert big.status_code == 400 and "the limit is 10." in str(big.data["file"])
    assert not ImportBatch.objects.exists()


def test_roles_on_imports_and_items(api_as, labeler, sme, mle, project):
    archive = zip_bytes({"a.png": png_bytes(1)})
    assert upload(api_as(labeler), project, "a.zip", archive).status_code == 404  # not theirs to see
    assert upload(api_as(sme), project, "a.zip", archive).status_code == 403
    assert upload(api_as(mle), project, "a.zip", archive).status_code == 201
    imports_url = reverse("api:import-list", args=[project.pk])
    items_url = reverse("api:item-list", args=[project.pk])
    assert api_as(labeler).get(imports_url).status_code == 404
    assert api_as(labeler).get(items_url).status_code == 404  # labelers never browse gold
    assert api_as(sme).get(imports_url).data["count"] == 1
    assert api_as(sme).get(items_url).data["results"][0]["external_id"] == "a.png"


def test_items_list_query_count_and_gold(api_as, sme, project, tmp_path, django_assert_num_queries):
    from annotation.services.item_import import import_items

    manifest = "filename,gold,noise\n" + "".join(f"{i}.png,crow,car\n" for i in range(0, 30, 2))
    entries = {f"{i}.png": png_bytes(i) for i in range(30)} | {"manifest.csv": manifest.encode()}
    (tmp_path / "a.zip").write_bytes(zip_bytes(entries))
    import_items(project, tmp_path / "a.zip")
    client = api_as(sme)
    url = reverse("api:item-list", args=[project.pk])
    # project + membership role, count, items, gold, gold classes: independent of the page size.
    with django_assert_num_queries(6):
        results = client.get(url).data["results"]
    assert len(results) == 30
    by_id = {r["external_id"]: r for r in results}
    assert by_id["0.png"]["gold"] == ["crow"] and by_id["1.png"]["gold"] == []
    assert by_id["0.png"]["metadata"] == {"noise": "car"}
    item = Item.objects.get(external_id="0.png")
    assert by_id["0.png"]["thumbnail"] == f"http://testserver/items/{item.pk}/thumbnail/"
    split = client.get(url, {"split": "test"}).data["results"]
    assert all(r["split"] == "test" for r in split)
    assert client.get(url, {"split": "holdout"}).status_code == 400


def test_outsider_gets_404_on_every_project_endpoint(api_as, outsider, mle, project):
    batch = ImportBatch.objects.create(project=project, kind="images", source_name="x.zip")
    client = api_as(outsider)
    for url in [
        reverse("api:project-detail", args=[project.pk]),
        reverse("api:import-list", args=[project.pk]),
        reverse("api:import-detail", args=[project.pk, batch.pk]),
        reverse("api:item-list", args=[project.pk]),
    ]:
        assert client.get(url).status_code == 404, url
    assert upload(client, project, "a.zip", zip_bytes({"a.png": png_bytes(1)})).status_code == 404
    assert not Item.objects.filter(project=project).exists()


def test_import_detail_only_within_its_project(api_as, mle, project, other_project):
    Membership.objects.create(user=mle, project=other_project, role="mle")
    batch = ImportBatch.objects.create(project=other_project, kind="texts", source_name="t.csv")
    client = api_as(mle)
    assert client.get(reverse("api:import-detail", args=[project.pk, batch.pk])).status_code == 404
    assert client.get(reverse("api:import-detail", args=[other_project.pk, batch.pk])).status_code == 200


def test_superuser_sees_every_project(project, other_project):
    admin = make_user("root")
    admin.is_superuser = admin.is_staff = True
    admin.save()
    client = APIClient()
    client.force_authenticate(admin)
    assert {p["slug"] for p in client.get(reverse("api:project-list")).data["results"]} == {"birds", "reviews"}


def test_openapi_schema_and_docs(client, mle):
    client.force_login(mle)
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/projects/{project_id}/imports/" in schema.content
    assert client.get("/api/docs/").status_code == 200


def test_item_files_are_for_members_only(client, labeler, outsider, project):
    import tempfile
    from pathlib import Path

    from annotation.services.item_import import import_items

    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "a.png").write_bytes(png_bytes(7))
        import_items(project, folder)
    item = Item.objects.get(external_id="a.png")
    url = reverse("item-file", args=[item.pk, "image"])
    assert client.get(url).status_code == 302  # to the login page
    client.force_login(outsider)
    assert client.get(url).status_code == 404
    client.force_login(labeler)
    assert client.get(url).status_code == 404  # not served to them yet
    from annotation.services import labeling

    assert labeling.next_item(project, labeler).item == item
    response = client.get(url)
    assert response.status_code == 200 and b"".join(response.streaming_content) == png_bytes(7)
    assert client.get(reverse("item-file", args=[item.pk, "thumbnail"])).status_code == 200
    assert client.get(reverse("item-file", args=[item.pk, "secrets"])).status_code == 404
