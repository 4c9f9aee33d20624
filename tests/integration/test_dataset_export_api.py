"""The dataset-export API: roles, bad options (400 naming them), create, list, detail, download."""

import hashlib
import json

import pytest
from django.urls import reverse

from annotation.models import DatasetExport, Membership
from tests.conftest import make_user

from .dataset_export_data import build_project

pytestmark = pytest.mark.django_db


@pytest.fixture
def films(db):
    return build_project()


def member(project, name, role):
    user = make_user(name)
    Membership.objects.create(user=user, project=project, role=role)
    return user


def list_url(project):
    return reverse("api:dataset-export-list", args=[project.pk])


def test_sme_exports_and_downloads(films, api_as):
    client = api_as(member(films, "sme-x", "sme"))
    response = client.post(
        list_url(films), {"format": "jsonl", "include_labels": True, "split": ["dev"]}, format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "done" and body["rows"] == 2 and body["created_by"] == "sme-x"
    assert body["options"]["split"] == ["dev"] and body["options"]["include_labels"] is True
    detail = client.get(reverse("api:dataset-export-detail", args=[films.pk, body["id"]]))
    assert detail.status_code == 200 and detail.json()["progress"] == 1.0
    listed = client.get(list_url(films)).json()
    assert [e["id"] for e in listed["results"]] == [body["id"]]
    download = client.get(body["download_url"])
    assert download.status_code == 200
    assert download["Content-Disposition"] == f'attachment; filename="films-export-{body["id"]}.jsonl"'
    data = b"".join(download.streaming_content)
    assert hashlib.sha256(data).hexdigest() == body["sha256"] == download["X-Content-SHA256"]
    rows = [json.loads(line) for line in data.splitlines()]
    assert sorted(r["external_id"] for r in rows) == ["c1", "u1"]
    assert all(r["labels"] for r in rows)


def test_mle_may_export_too(films, api_as):
    response = api_as(member(films, "mle-x", "mle")).post(list_url(films), {"format": "parquet"}, format="json")
    assert response.status_code == 201 and response.json()["rows"] == 8


def test_big_project_is_queued(films, api_as, monkeypatch, django_capture_on_commit_callbacks):
    from annotation.services import dataset_export as service
    from annotation.tasks import run_dataset_export

    monkeypatch.setattr(service, "INLINE_MAX_ITEMS", 3)
    sent = []
    monkeypatch.setattr(run_dataset_export, "apply_async", lambda args, **options: sent.append(args[0]))
    client = api_as(member(films, "mle-y", "mle"))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(list_url(films), {"format": "csv"}, format="json")
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "queued" and body["download_url"] is None and sent == [body["id"]]
    download = client.get(reverse("api:dataset-export-download", args=[films.pk, body["id"]]))
    assert download.status_code == 409 and "queued" in download.json()["status"][0]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"format": "xml"}, "format"),
        ({}, "format"),
        ({"format": "jsonl", "colour": "red"}, "colour"),
        ({"format": "jsonl", "split": ["validation"]}, "split"),
        ({"format": "jsonl", "source": ["model"]}, "source"),
        ({"format": "jsonl", "min_confidence": 1.5}, "min_confidence"),
        ({"format": "jsonl", "slice": ["noise"]}, "slice"),
        ({"format": "jsonl", "label_class": ["cat"]}, "label_class"),
        ({"format": "jsonl", "consensus": "mode"}, "consensus"),
        ({"format": "jsonl", "include_labels": "maybe"}, "include_labels"),
    ],
)
def test_bad_options_get_400_naming_them(films, api_as, payload, field):
    client = api_as(member(films, "mle-z", "mle"))
    response = client.post(list_url(films), payload, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert not DatasetExport.objects.exists()


def test_not_a_json_object_is_400(films, api_as):
    response = api_as(member(films, "mle-w", "mle")).post(list_url(films), ["jsonl"], format="json")
    assert response.status_code == 400


@pytest.mark.parametrize("who", ["labeler", "outsider", "other-project-mle"])
def test_labelers_and_outsiders_get_404_everywhere(films, api_as, who):
    mle = member(films, "owner", "mle")
    export = api_as(mle).post(list_url(films), {"format": "jsonl"}, format="json").json()
    if who == "labeler":
        user = member(films, "lab-x", "labeler")
    elif who == "outsider":
        user = make_user("nobody")
    else:
        other = build_project("others")
        user = member(other, "mle-other", "mle")
    client = api_as(user)
    urls = [
        list_url(films),
        reverse("api:dataset-export-detail", args=[films.pk, export["id"]]),
        reverse("api:dataset-export-download", args=[films.pk, export["id"]]),
    ]
    for url in urls:
        assert client.get(url).status_code == 404, url
    assert client.post(list_url(films), {"format": "jsonl"}, format="json").status_code == 404
    assert DatasetExport.objects.count() == 1


def test_an_export_of_another_project_is_404(films, api_as):
    other = build_project("others")
    mle = member(films, "mle-a", "mle")
    Membership.objects.create(user=mle, project=other, role="mle")
    export = api_as(mle).post(list_url(other), {"format": "jsonl"}, format="json").json()
    # the export exists, but not under this project's URL
    response = api_as(mle).get(reverse("api:dataset-export-detail", args=[films.pk, export["id"]]))
    assert response.status_code == 404
    response = api_as(mle).get(reverse("api:dataset-export-download", args=[films.pk, export["id"]]))
    assert response.status_code == 404


def test_anonymous_is_refused(films, client):
    assert client.get(list_url(films)).status_code in (401, 403)


@pytest.mark.parametrize("field", ["slice", "label_class"])
def test_a_nul_in_an_option_is_a_400(films, api_as, field):
    value = ["noise=c\x00ar"] if field == "slice" else ["p\x00os"]
    response = api_as(member(films, "mle-n", "mle")).post(
        list_url(films), {"format": "jsonl", field: value}, format="json"
    )
    assert response.status_code == 400, response.content
    assert not DatasetExport.objects.exists()
