"""The dataset-export page: SMEs and MLEs start and list exports; labelers and outsiders get 404;
bad input is shown next to its field."""

import pytest

from annotation.models import DatasetExport, Membership
from tests.conftest import make_user

from .dataset_export_data import build_project

pytestmark = pytest.mark.django_db


@pytest.fixture
def films(db):
    return build_project()


def page(project):
    return f"/projects/{project.slug}/exports/"


def logged_in(client, project, name, role):
    user = make_user(name)
    if role:
        Membership.objects.create(user=user, project=project, role=role)
    client.force_login(user)
    return client


@pytest.mark.parametrize("role", ["sme", "mle"])
def test_staff_export_from_the_page(films, client, role):
    logged_in(client, films, f"{role}-p", role)
    response = client.get(page(films))
    assert response.status_code == 200
    assert b'data-testid="no-exports"' in response.content
    response = client.post(page(films), {"format": "csv", "split": ["dev"], "include_labels": "1"})
    assert response.status_code == 302 and response["Location"] == page(films)
    export = DatasetExport.objects.get()
    assert export.status == "done" and export.rows == 2 and export.created_by.username == f"{role}-p"
    assert export.options["split"] == ["dev"] and export.options["include_labels"] is True
    listing = client.get(page(films)).content.decode()
    assert f'data-export="{export.pk}"' in listing and 'data-testid="export-download"' in listing
    assert "split: dev" in listing and export.sha256[:10] in listing
    assert "<script>" not in listing and " onclick=" not in listing  # JS from static files only
    download = client.get(f"/api/v1/projects/{films.pk}/dataset-exports/{export.pk}/download/")
    assert download.status_code == 200
    assert b"".join(download.streaming_content).startswith(b"item_id,external_id,split")


@pytest.mark.parametrize(
    ("form", "field", "message"),
    [
        ({"format": "xml"}, "format", "not a valid choice"),
        ({"format": "csv", "min_confidence": "high"}, "min_confidence", "valid number"),
        ({"format": "csv", "slice": "noise"}, "slice", "key=value"),
        ({"format": "csv", "label_class": ["cat"]}, "label_class", "no class named cat"),
    ],
)
def test_bad_input_is_shown_next_to_its_field(films, client, form, field, message):
    logged_in(client, films, "mle-p", "mle")
    response = client.post(page(films), form)
    assert response.status_code == 400
    html = response.content.decode()
    assert f'data-error="{field}"' in html and message in html
    assert not DatasetExport.objects.exists()


def test_a_queued_export_shows_a_progress_bar_polled_from_the_api(films, client, monkeypatch):
    from annotation.services import dataset_export as service

    logged_in(client, films, "mle-q", "mle")
    export = service.create_export(films, "jsonl", {}, run_inline=False)
    html = client.get(page(films)).content.decode()
    assert f'aria-label="Progress of export {export.pk}"' in html
    assert f'data-status-url="/api/v1/projects/{films.pk}/dataset-exports/{export.pk}/"' in html
    assert "frontend/exports.js" in html and "frontend/livestatus.js" in html


@pytest.mark.parametrize("role", ["labeler", None])
def test_labelers_and_outsiders_get_404(films, client, role):
    logged_in(client, films, "someone", role)
    assert client.get(page(films)).status_code == 404
    assert client.post(page(films), {"format": "csv"}).status_code == 404
    assert not DatasetExport.objects.exists()


def test_anonymous_is_sent_to_login(films, client):
    response = client.get(page(films))
    assert response.status_code == 302 and "/login/" in response["Location"]
