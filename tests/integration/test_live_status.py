"""Live status and readable numbers on the pages (issue 19, items 3, 5, 6; two items of issue 16):
the JSON status endpoints the pages poll (TFLite exports, quality reports, import batches) for
members and non-members in each state; the promote / roll back confirmation's sentences; the
page refusing a too-long promote note with the API's message; the export download when its
bundle file is gone; item previews for SMEs and MLEs only; the legends and Greek letters."""

import pytest
from django.core.cache import cache
from django.urls import reverse

from annotation.models import ImportBatch, Item, LabelClass, QualityReport
from annotation.services import quality as quality_service
from training import services
from training.models import ModelExport, ModelVersion

from .test_export import fake_ready_export, fake_ready_version
from .training_data import add_digit_items, label

ALPHA, KAPPA = "\N{GREEK SMALL LETTER ALPHA}", "\N{GREEK SMALL LETTER KAPPA}"
NOTE_TOO_LONG = "Ensure this field has no more than 500 characters."


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()  # the quality refresh throttle lives in the cache
    yield
    cache.clear()


def ready(project, accuracy, method="holdout"):
    version = fake_ready_version(project, "sklearn_logreg")
    version.metrics = {"evaluation": {"accuracy": accuracy, "method": method}}
    version.save(update_fields=["metrics"])
    return version


# --------------------------------------------------------------------------------------------
# TFLite exports: ?exports= on the model status endpoint
# --------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_export_status_for_members_in_each_state(client, project, other_project, mle, sme, labeler, outsider):
    add_digit_items(project, 15)
    version = fake_ready_version(project)
    exporting = ModelExport.objects.create(model_version=version, format="int8")
    done = fake_ready_export(version)
    failed = ModelExport.objects.create(model_version=version, format="float32", status="failed", error="no <b>")
    elsewhere = ModelExport.objects.create(
        model_version=ModelVersion.objects.create(project=other_project, trainer="keras_cnn"), format="int8"
    )
    url = reverse("training:model-status", args=[project.slug])
    ids = f"{exporting.pk},{done.pk},{failed.pk},{elsewhere.pk}"

    for user, code in [(outsider, 404), (labeler, 403), (sme, 200), (mle, 200)]:
        client.force_login(user)
        assert client.get(url, {"exports": ids}).status_code == code, user

    body = client.get(url, {"exports": ids}).json()
    assert "models" not in body  # only what was asked for
    model = version.short_id
    assert body["exports"] == [
        {"id": exporting.pk, "model": model, "status": "exporting", "status_label": "Exporting", "error": ""},
        {"id": done.pk, "model": model, "status": "ready", "status_label": "Ready", "error": ""},
        {"id": failed.pk, "model": model, "status": "failed", "status_label": "Failed", "error": "no <b>"},
    ]  # the other project's export is not there

    # The worker finishes: the next poll says so.
    ModelExport.objects.filter(pk=exporting.pk).update(status="ready", bundle=done.bundle, sha256=done.sha256)
    assert client.get(url, {"exports": str(exporting.pk)}).json()["exports"][0]["status"] == "ready"

    bad = client.get(url, {"exports": "1,two"})
    assert bad.status_code == 400 and "export ids" in bad.json()["exports"][0]
    both = client.get(url, {"exports": str(done.pk), "ids": version.short_id}).json()
    assert [m["id"] for m in both["models"]] == [version.short_id] and len(both["exports"]) == 1


@pytest.mark.django_db
def test_model_page_marks_running_exports_for_the_poller(client, project, mle):
    add_digit_items(project, 15)
    version = fake_ready_version(project)
    exporting = ModelExport.objects.create(model_version=version, format="int8")
    client.force_login(mle)
    page = client.get(reverse("training:model-detail", args=[project.slug, version.short_id])).content.decode()
    assert f'data-export="{exporting.pk}" data-status="exporting"' in page
    assert 'data-fragment="exports"' in page and "frontend/livestatus.js" in page
    assert f'data-status-url="{reverse("training:model-status", args=[project.slug])}"' in page


# --------------------------------------------------------------------------------------------
# Quality: ?only=status on the quality API
# --------------------------------------------------------------------------------------------


def labelled_project(project, labelers):
    add_digit_items(project, 6)  # with gold, so the bars carry the HLP tick
    crow = LabelClass.objects.get(project=project, name="crow")
    for item in Item.objects.filter(project=project):
        for user in labelers:
            label(item, user, crow)


@pytest.mark.django_db
def test_quality_status_for_members_in_each_state(api_as, project, mle, sme, labeler, labeler2, outsider, monkeypatch):
    from annotation import tasks

    queued = []
    monkeypatch.setattr(tasks.refresh_quality_report, "delay", queued.append)
    labelled_project(project, [labeler, labeler2])
    url = reverse("api:project-quality", args=[project.pk])

    for user, code in [(outsider, 404), (labeler, 404), (sme, 200), (mle, 200)]:
        assert api_as(user).get(url, {"only": "status"}).status_code == code, user

    computing = api_as(mle).get(url, {"only": "status"}).data
    assert computing["status"] == "computing" and computing["report_id"] is None and computing["stale"]
    assert computing["annotation_count"] == 12
    assert not QualityReport.objects.exists()  # the status never computes one

    report = quality_service.compute_quality_report(project)
    fresh = api_as(sme).get(url, {"only": "status"}).data
    assert fresh["status"] == "ready" and fresh["report_id"] == report.pk and not fresh["stale"]
    assert fresh["computed_at"] == report.computed_at.isoformat() and fresh["age_seconds"] >= 0
    assert "agreement" not in fresh  # not the report itself

    label(Item.objects.filter(project=project).first(), mle, LabelClass.objects.get(project=project, name="dove"))
    stale = api_as(sme).get(url, {"only": "status"}).data
    assert stale["stale"] and stale["report_id"] == report.pk and stale["annotation_count"] == 13
    assert queued == []  # polling queues nothing

    newer = quality_service.compute_quality_report(project)
    assert api_as(sme).get(url, {"only": "status"}).data["report_id"] == newer.pk

    bad = api_as(mle).get(url, {"only": "everything"})
    assert bad.status_code == 400 and "only" in bad.data


@pytest.mark.django_db
def test_quality_page_polls_its_status_and_keeps_greek_letters(client, project, mle, labeler, labeler2):
    labelled_project(project, [labeler, labeler2])
    client.force_login(mle)
    page = client.get(reverse("quality:dashboard", args=[project.slug])).content.decode()
    report = QualityReport.objects.get()
    status_url = reverse("api:project-quality", args=[project.pk]) + "?only=status"
    assert f'data-report-id="{report.pk}" data-stale="0" data-status-url="{status_url}"' in page
    assert "frontend/quality.js" in page and "frontend/livestatus.js" in page
    # Lower-case alpha and kappa even inside an uppercased table heading.
    assert f'<span class="greek">{ALPHA}</span>' in page and f'<span class="greek">{KAPPA}</span></th>' in page
    assert page.count('data-legend="interval"') == 3  # labelers, classes, slices (ink)
    assert "its 95% interval" in page and "the project's HLP" in page


# --------------------------------------------------------------------------------------------
# Imports: the import API as the project page's status endpoint
# --------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_import_status_for_members_and_the_project_page(client, api_as, project, mle, sme, labeler, outsider):
    done = ImportBatch.objects.create(project=project, kind="images", source_name="a.zip", created_count=3)
    # A batch still running: no import writes such a state yet (imports finish in the request);
    # the page polls any state that is not final.
    running = ImportBatch.objects.create(project=project, kind="images", source_name="b.zip", status="running")
    url = reverse("api:import-detail", args=[project.pk, running.pk])
    for user, code in [(outsider, 404), (labeler, 404), (sme, 200), (mle, 200)]:
        assert api_as(user).get(url).status_code == code, user
    assert api_as(sme).get(url).data["status"] == "running"
    ImportBatch.objects.filter(pk=running.pk).update(status="failed", rejected_count=2)
    body = api_as(sme).get(url).data
    assert body["status"] == "failed" and body["rejected_count"] == 2

    ImportBatch.objects.filter(pk=running.pk).update(status="running")
    client.force_login(sme)
    page = client.get(reverse("frontend:project-detail", args=[project.slug])).content.decode()
    assert f'data-batch="{running.pk}" data-status="running" data-status-url="{url}"' in page
    assert f'data-batch="{done.pk}" data-status="done"' in page
    assert 'data-fragment="imports"' in page and "frontend/imports_status.js" in page
    client.force_login(labeler)
    page = client.get(reverse("frontend:project-detail", args=[project.slug])).content.decode()
    assert "data-batch" not in page and "imports_status.js" not in page


# --------------------------------------------------------------------------------------------
# Confirm promote / roll back
# --------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_confirmation_names_what_serves_now_and_what_will(client, project, mle, sme):
    add_digit_items(project, 15)
    old = ready(project, 0.88)
    new = ready(project, 0.912, method="cross_validation")
    services.promote(old, user=mle)
    client.force_login(mle)

    detail = client.get(reverse("training:model-detail", args=[project.slug, new.short_id])).content.decode()
    assert f'data-confirm-title="Promote model {new.short_id}?"' in detail
    assert f'data-confirm-now="model {old.short_id} · dev accuracy 88.0%"' in detail
    assert f'data-confirm-next="model {new.short_id} · cross-validated accuracy 91.2%"' in detail
    assert 'data-testid="confirm-dialog"' in detail

    services.promote(new, user=mle)
    listing = client.get(reverse("training:model-list", args=[project.slug])).content.decode()
    assert f'data-confirm-title="Roll back model {new.short_id}?"' in listing
    assert f'data-confirm-next="model {old.short_id} · dev accuracy 88.0%"' in listing  # what a rollback restores
    assert f'data-confirm-title="Promote model {old.short_id}?"' in listing
    assert f'data-confirm-now="model {new.short_id} · cross-validated accuracy 91.2%"' in listing

    services.rollback(new, user=mle)
    services.rollback(old, user=mle)  # nothing current now
    detail = client.get(reverse("training:model-detail", args=[project.slug, old.short_id])).content.decode()
    assert 'data-confirm-now="no model (nothing is served)"' in detail

    client.force_login(sme)  # SMEs read, they do not promote: no dialog
    assert "data-confirm-dialog" not in client.get(reverse("training:model-list", args=[project.slug])).content.decode()


@pytest.mark.django_db
def test_page_refuses_a_too_long_note_with_the_api_message(client, api_as, project, mle):
    add_digit_items(project, 15)
    version = ready(project, 0.9)
    api = api_as(mle).post(
        reverse("training_api:model-promote", args=[version.short_id]), {"note": "x" * 600}, format="json"
    )
    assert api.status_code == 400 and api.data["note"] == [NOTE_TOO_LONG]

    client.force_login(mle)
    promote = reverse("training:model-promote", args=[project.slug, version.short_id])
    page = client.post(promote, {"note": "x" * 600}, follow=True).content.decode()
    assert NOTE_TOO_LONG in page
    assert not ModelVersion.objects.get(pk=version.pk).is_promoted

    client.post(promote, {"note": "y" * 500})
    version.refresh_from_db()
    assert version.is_promoted and version.promotions.get().note == "y" * 500


@pytest.mark.django_db
def test_export_override_refuses_a_too_long_note_with_the_api_message(client, project, mle):
    add_digit_items(project, 15)
    version = fake_ready_version(project)
    rejected = fake_ready_export(version)
    ModelExport.objects.filter(pk=rejected.pk).update(status="rejected")
    client.force_login(mle)
    page = client.get(reverse("training:model-detail", args=[project.slug, version.short_id])).content.decode()
    assert 'name="note" required' in page and 'maxlength="500"' not in page  # no silent cut by the browser
    override = reverse("training:export-override", args=[project.slug, version.short_id, rejected.pk])
    assert NOTE_TOO_LONG in client.post(override, {"note": "z" * 600}, follow=True).content.decode()
    rejected.refresh_from_db()
    assert rejected.status == "rejected" and rejected.override_note == ""
    client.post(override, {"note": "z" * 500})
    rejected.refresh_from_db()
    assert rejected.status == "ready" and rejected.override_note == "z" * 500


# --------------------------------------------------------------------------------------------
# Issue 16: the bundle file gone; previews for SMEs and MLEs only
# --------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_download_of_a_bundle_whose_file_is_gone_is_410_with_a_message(client, api_as, project, mle, sme):
    add_digit_items(project, 15)
    version = fake_ready_version(project)
    export = fake_ready_export(version)
    services.artifact_root().joinpath(export.bundle).unlink()

    client.force_login(sme)
    page = client.get(reverse("training:export-download", args=[project.slug, version.short_id, export.pk]))
    assert page.status_code == 410
    assert "The bundle of this export is gone" in page.content.decode()
    api = api_as(mle).get(reverse("training_api:export-download", args=[export.pk]))
    assert api.status_code == 410 and "is gone from the server" in api.data["detail"]

    ModelExport.objects.filter(pk=export.pk).update(bundle="../../outside.zip")  # never served
    assert client.get(page.request["PATH_INFO"]).status_code == 410


@pytest.mark.django_db
def test_item_previews_only_for_smes_mles_and_superusers(client, project, mle, sme, labeler):
    from django.contrib.auth import get_user_model

    add_digit_items(project, 3)
    item = Item.objects.filter(project=project).first()
    thumbnail = reverse("item-file", args=[item.pk, "thumbnail"])
    root = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    for user, shown in [(labeler, False), (sme, True), (mle, True), (root, True)]:
        client.force_login(user)
        page = client.get(reverse("frontend:project-detail", args=[project.slug])).content.decode()
        assert ('data-testid="item-preview"' in page) is shown, user
        assert (thumbnail in page) is shown, user
        assert (f'data-item="{item.external_id}"' in page) is shown, user


# --------------------------------------------------------------------------------------------
# The model page's legends and gallery links
# --------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_model_page_legends_and_gallery_tiles_open_the_item(client, project, mle):
    add_digit_items(project, 15)
    version = ready(project, 0.9)
    item = Item.objects.filter(project=project).first()
    entry = {"item_id": item.pk, "external_id": item.external_id, "label": "crow", "predicted": "dove",
             "p_predicted": 0.9, "has_thumbnail": True}  # fmt: skip
    version.metrics = {
        "evaluation": {"accuracy": 0.9, "method": "holdout"},
        "top_k": {"train": {"confidently_wrong": [entry]}},
        "gap_to_hlp": {"rows": [{"slice": "ink=light", "key": "ink", "value": "light", "n": 5, "model_accuracy": 0.7,
                                 "hlp": 0.9, "gap": 0.2, "share": 0.3, "priority": 0.06}]},
    }  # fmt: skip
    version.save(update_fields=["metrics"])
    client.force_login(mle)
    page = client.get(reverse("training:model-detail", args=[project.slug, version.short_id])).content.decode()
    assert f'href="{reverse("adjudication:item", args=[project.slug, item.pk])}"' in page
    assert 'data-legend="gallery"' in page and "the item's training label" in page
    assert 'data-legend="gap"' in page and "HLP \N{MINUS SIGN} model accuracy" in page and "A positive gap" in page
